package substream

import (
	"encoding/json"
	"sort"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
)

// Fingerprint identifies what a subscription's items render to: the document, the operation
// name, and the values of the variables used below the root fields. Arguments of the root
// fields themselves (such as `after` or `types`) choose which items arrive, not how an item
// renders, so subscribers that differ only there share renderings.
func Fingerprint(op *graphql.OperationContext) string {
	names := map[string]bool{}
	fragments := map[string]bool{}
	for _, sel := range op.Operation.SelectionSet {
		if f, ok := sel.(*ast.Field); ok {
			collectDirectiveVars(f.Directives, names)
			collectSelectionVars(f.SelectionSet, names, fragments)
			continue
		}
		// A fragment at the root: be exact and key on every variable.
		for name := range op.Variables {
			names[name] = true
		}
	}
	keys := make([]string, 0, len(names))
	for name := range names {
		keys = append(keys, name)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(op.RawQuery)
	b.WriteByte(0)
	b.WriteString(op.OperationName)
	for _, name := range keys {
		v, _ := json.Marshal(op.Variables[name])
		b.WriteByte(0)
		b.WriteString(name)
		b.WriteByte('=')
		b.Write(v)
	}
	return b.String()
}

func collectSelectionVars(set ast.SelectionSet, names, fragments map[string]bool) {
	for _, sel := range set {
		switch s := sel.(type) {
		case *ast.Field:
			for _, arg := range s.Arguments {
				collectValueVars(arg.Value, names)
			}
			collectDirectiveVars(s.Directives, names)
			collectSelectionVars(s.SelectionSet, names, fragments)
		case *ast.InlineFragment:
			collectDirectiveVars(s.Directives, names)
			collectSelectionVars(s.SelectionSet, names, fragments)
		case *ast.FragmentSpread:
			collectDirectiveVars(s.Directives, names)
			if s.Definition != nil && !fragments[s.Name] {
				fragments[s.Name] = true
				collectSelectionVars(s.Definition.SelectionSet, names, fragments)
			}
		}
	}
}

func collectDirectiveVars(ds ast.DirectiveList, names map[string]bool) {
	for _, d := range ds {
		for _, arg := range d.Arguments {
			collectValueVars(arg.Value, names)
		}
	}
}

func collectValueVars(v *ast.Value, names map[string]bool) {
	if v == nil {
		return
	}
	if v.Kind == ast.Variable {
		names[v.Raw] = true
	}
	for _, c := range v.Children {
		collectValueVars(c.Value, names)
	}
}
