// Package ent holds eventgate's data model: the hand-written schema in ent/schema and the
// client generated from it. Regenerate with `make generate`.
package ent

//go:generate go run -mod=mod entc.go
