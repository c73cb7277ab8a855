//go:build ignore

// entc.go is the one ent code-generation config: `go run ./ent/entc.go` (via `make generate`).
package main

import (
	"log"

	"entgo.io/ent/entc"
	"entgo.io/ent/entc/gen"
)

func main() {
	err := entc.Generate("./ent/schema", &gen.Config{
		Target:  "./ent",
		Package: "github.com/eventgate/eventgate/ent",
		// sql/upsert for idempotent ingest; sql/execquery for raw statements inside ent transactions;
		// sql/lock for FOR UPDATE SKIP LOCKED claims on PostgreSQL; sql/modifier for atomic counters.
		Features: []gen.Feature{gen.FeatureUpsert, gen.FeatureExecQuery, gen.FeatureLock, gen.FeatureModifier},
	})
	if err != nil {
		log.Fatalf("ent codegen: %v", err)
	}
}
