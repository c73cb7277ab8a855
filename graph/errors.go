package graph

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/eventgate/eventgate/server/apperr"
)

// ErrorPresenter maps errors to what clients see: domain errors keep their code, message and
// field; gqlgen's own errors (parse, validation, complexity) keep theirs; anything else is
// logged and shown only as INTERNAL_SERVER_ERROR.
func ErrorPresenter(log *slog.Logger) graphql.ErrorPresenterFunc {
	return func(ctx context.Context, err error) *gqlerror.Error {
		gqlErr := graphql.DefaultErrorPresenter(ctx, err)
		if e, ok := apperr.As(err); ok {
			gqlErr.Message = e.Message
			ext := map[string]any{"code": e.Code}
			field := e.Field
			if field == "" && e.Code == apperr.BadUserInput {
				field = pathField(gqlErr.Path)
			}
			if field != "" {
				ext["field"] = field
				gqlErr.Message = field + ": " + e.Message
			}
			for k, v := range e.Extra {
				ext[k] = v
			}
			gqlErr.Extensions = ext
			return gqlErr
		}
		if _, ok := gqlErr.Extensions["code"]; ok {
			return gqlErr
		}
		var inner *gqlerror.Error
		if errors.As(err, &inner) && inner.Err == nil && inner.Rule != "" {
			return gqlErr
		}
		if errors.Is(err, context.Canceled) {
			gqlErr.Message = "request cancelled"
			gqlErr.Extensions = map[string]any{"code": apperr.Internal}
			return gqlErr
		}
		log.Error("graphql internal error", "err", err, "path", gqlErr.Path.String())
		gqlErr.Message = "internal server error"
		gqlErr.Extensions = map[string]any{"code": apperr.Internal}
		return gqlErr
	}
}

// Recover turns a resolver panic into an internal error (logged with its value, never shown).
func Recover(log *slog.Logger) graphql.RecoverFunc {
	return func(ctx context.Context, v any) error {
		log.Error("graphql resolver panic", "panic", fmt.Sprint(v))
		return errors.New("resolver panic")
	}
}

// pathField renders the argument part of an error path, such as
// ["publishEvent","input","occurredAt"], as "input.occurredAt" (the first element is the field).
func pathField(p ast.Path) string {
	var parts []string
	if len(p) > 1 {
		p = p[1:]
	}
	for _, el := range p {
		switch v := el.(type) {
		case ast.PathName:
			parts = append(parts, string(v))
		case ast.PathIndex:
			if len(parts) > 0 {
				parts[len(parts)-1] += fmt.Sprintf("[%d]", int(v))
			}
		}
	}
	return strings.Join(parts, ".")
}
