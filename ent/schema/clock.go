package schema

import "time"

// now is the default for time columns: UTC, so stored times compare correctly as text in SQLite
// and read back the same on every instance.
func now() time.Time { return time.Now().UTC() }
