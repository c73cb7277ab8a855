// Package migrations embeds the versioned SQL migrations, one folder per dialect. Files are
// named NNNN_description.sql and applied in name order; an applied file never changes.
package migrations

import "embed"

// FS holds the migration files.
//
//go:embed sqlite/*.sql postgres/*.sql
var FS embed.FS
