package catalog

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// contract is DESIGN.md §2 typed in by hand, independently of the table: field → JSON Schema type,
// "!" marking required fields. The catalog must match it exactly, in this order.
var contract = []struct {
	name   string
	fields []string
}{
	{"user.created", []string{"user_id:integer!", "telegram_id:integer", "username:string", "first_name:string", "last_name:string", "email:string", "auth_type:string", "referral_code:string", "referred_by_id:integer"}},
	{"payment.completed", []string{"transaction_id:integer!", "user_id:integer!", "type:string", "amount_kopeks:integer!", "amount_rubles:number", "payment_method:string", "external_id:string", "is_completed:boolean", "description:string"}},
	{"transaction.created", []string{"transaction_id:integer!", "user_id:integer!", "type:string", "amount_kopeks:integer!", "amount_rubles:number", "payment_method:string", "external_id:string", "is_completed:boolean", "description:string"}},
	{"ticket.created", []string{"ticket_id:integer!", "user_id:integer!", "title:string!", "status:string", "priority:string", "has_media:boolean"}},
	{"ticket.status_changed", []string{"ticket_id:integer!", "user_id:integer", "old_status:string!", "new_status:string!", "closed_at:string"}},
	{"ticket.message_added", []string{"ticket_id:integer!", "message_id:integer!", "user_id:integer", "is_from_admin:boolean!", "message_text:string", "has_media:boolean", "status:string"}},
	{"webhook.test", []string{"webhook_id:string", "message:string"}},
	{"webhook.disabled", []string{"webhook_id:string", "reason:string"}},
}

// publishedSchema is the part of a JSON Schema document the tests read.
type publishedSchema struct {
	Schema               string                     `json:"$schema"`
	Title                string                     `json:"title"`
	Type                 string                     `json:"type"`
	Properties           map[string]json.RawMessage `json:"properties"`
	Required             []string                   `json:"required"`
	AdditionalProperties *bool                      `json:"additionalProperties"`
	Examples             []json.RawMessage          `json:"examples"`
}

type publishedProperty struct {
	Type        any    `json:"type"`
	Format      string `json:"format"`
	Enum        []any  `json:"enum"`
	Description string `json:"description"`
}

func parseSchema(t *testing.T, raw json.RawMessage) (publishedSchema, []string) {
	t.Helper()
	var s publishedSchema
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatalf("schema is not JSON: %v\n%s", err, raw)
	}
	return s, propertyOrder(t, raw)
}

// propertyOrder returns the keys of the schema's "properties" object in document order.
func propertyOrder(t *testing.T, raw json.RawMessage) []string {
	t.Helper()
	var doc struct {
		Properties json.RawMessage `json:"properties"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	keys, err := objectKeys(doc.Properties)
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

func TestAllMatchesContract(t *testing.T) {
	all := All()
	if len(all) != len(contract) {
		t.Fatalf("got %d types, want %d", len(all), len(contract))
	}
	for i, want := range contract {
		got := all[i]
		t.Run(want.name, func(t *testing.T) {
			if got.Name != want.name {
				t.Fatalf("type %d: got %q, want %q", i, got.Name, want.name)
			}
			if got.Description == "" || !strings.HasSuffix(got.Description, ".") {
				t.Errorf("got description %q, want one sentence", got.Description)
			}
			if wantReserved := strings.HasPrefix(want.name, "webhook."); got.Reserved != wantReserved {
				t.Errorf("got Reserved %v, want %v", got.Reserved, wantReserved)
			}
			s, order := parseSchema(t, got.Schema)
			if s.Schema != "https://json-schema.org/draft/2020-12/schema" || s.Type != "object" || s.Title != want.name {
				t.Errorf("got $schema %q, type %q, title %q; want draft 2020-12, object, %q", s.Schema, s.Type, s.Title, want.name)
			}
			if s.AdditionalProperties == nil || !*s.AdditionalProperties {
				t.Errorf("got additionalProperties %v, want true", s.AdditionalProperties)
			}
			var fields, required []string
			for _, name := range order {
				var p publishedProperty
				if err := json.Unmarshal(s.Properties[name], &p); err != nil {
					t.Fatal(err)
				}
				if p.Description == "" {
					t.Errorf("property %s has no description", name)
				}
				isRequired := slices.Contains(s.Required, name)
				field := name + ":"
				switch typ := p.Type.(type) {
				case string:
					if !isRequired {
						t.Errorf("optional property %s: got type %q, want it nullable", name, typ)
					}
					field += typ
				case []any:
					if isRequired || len(typ) != 2 || typ[1] != "null" {
						t.Errorf("property %s: got type %v, want [type, \"null\"] for optional fields only", name, typ)
					}
					field += typ[0].(string)
				}
				if isRequired {
					field += "!"
					required = append(required, name)
				}
				fields = append(fields, field)
			}
			if !slices.Equal(fields, want.fields) {
				t.Errorf("got fields\n%v\nwant\n%v", fields, want.fields)
			}
			if !slices.Equal(s.Required, required) && !(len(s.Required) == 0 && len(required) == 0) {
				t.Errorf("got required %v, want %v in property order", s.Required, required)
			}
			if s.Required == nil {
				t.Error("got no required list, want one (empty when nothing is required)")
			}
		})
	}
}

func TestSchemaFormatsAndEnums(t *testing.T) {
	props := func(name string) map[string]publishedProperty {
		t.Helper()
		typ, ok := Lookup(name)
		if !ok {
			t.Fatalf("Lookup(%q) found nothing", name)
		}
		s, _ := parseSchema(t, typ.Schema)
		out := map[string]publishedProperty{}
		for k, raw := range s.Properties {
			var p publishedProperty
			if err := json.Unmarshal(raw, &p); err != nil {
				t.Fatal(err)
			}
			out[k] = p
		}
		return out
	}
	ticket := props("ticket.created")
	if got, want := ticket["priority"].Enum, []any{"low", "normal", "high", "urgent", nil}; !reflect.DeepEqual(got, want) {
		t.Errorf("priority enum: got %v, want %v (null admitted because the field is optional)", got, want)
	}
	if got := props("ticket.status_changed")["closed_at"].Format; got != "date-time" {
		t.Errorf("closed_at format: got %q, want date-time", got)
	}
	if got := props("user.created")["telegram_id"].Format; got != "int64" {
		t.Errorf("telegram_id format: got %q, want int64", got)
	}
}

func TestExamplesAreValid(t *testing.T) {
	for _, typ := range All() {
		t.Run(typ.Name, func(t *testing.T) {
			s, _ := parseSchema(t, typ.Schema)
			if len(s.Examples) == 0 {
				t.Fatal("got no example, want one")
			}
			for _, ex := range s.Examples {
				if err := Validate(typ.Name, ex); err != nil {
					t.Errorf("example %s: got %v, want it valid", ex, err)
				}
			}
		})
	}
}

func TestAllIsStableAndIndependent(t *testing.T) {
	a, b := All(), All()
	if !reflect.DeepEqual(a, b) {
		t.Fatal("two calls of All differ")
	}
	// A caller that scribbles on what it got must not change the catalog.
	a[0].Schema[0] = 'X'
	a[0].Name = "changed"
	if c := All(); !reflect.DeepEqual(c, b) {
		t.Error("changing the result of All changed the catalog")
	}
}

func TestLookup(t *testing.T) {
	for _, typ := range All() {
		got, ok := Lookup(typ.Name)
		if !ok || !reflect.DeepEqual(got, typ) {
			t.Errorf("Lookup(%q): got %+v, %v; want the entry of All", typ.Name, got.Name, ok)
		}
	}
	for _, name := range []string{"", "user", "user.created.", "USER.CREATED", "webhook.other"} {
		if got, ok := Lookup(name); ok {
			t.Errorf("Lookup(%q): got %q, want nothing", name, got.Name)
		}
	}
}

func TestIsReserved(t *testing.T) {
	tests := []struct {
		name string
		want bool
	}{
		{"webhook.test", true},
		{"webhook.disabled", true},
		{"webhook.anything_new", true},
		{"user.created", false},
		{"webhooks.created", false},
		{"webhook", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := IsReserved(tt.name); got != tt.want {
			t.Errorf("IsReserved(%q): got %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestPropertiesFitValidate(t *testing.T) {
	for _, s := range table {
		if len(s.properties) > maxProperties {
			t.Errorf("%s: got %d properties, want at most %d", s.name, len(s.properties), maxProperties)
		}
	}
}

// payloadStructs maps each type to its payload struct, for the tests that hold them together.
var payloadStructs = map[string]reflect.Type{
	TypeUserCreated:         reflect.TypeFor[UserCreated](),
	TypePaymentCompleted:    reflect.TypeFor[Payment](),
	TypeTransactionCreated:  reflect.TypeFor[Payment](),
	TypeTicketCreated:       reflect.TypeFor[TicketCreated](),
	TypeTicketStatusChanged: reflect.TypeFor[TicketStatusChanged](),
	TypeTicketMessageAdded:  reflect.TypeFor[TicketMessageAdded](),
	TypeWebhookTest:         reflect.TypeFor[WebhookTest](),
	TypeWebhookDisabled:     reflect.TypeFor[WebhookDisabled](),
}

// decodeAs decodes payload into the struct of eventType, as Decode does for that struct.
func decodeAs(eventType string, payload []byte) (any, error) {
	switch eventType {
	case TypeUserCreated:
		return Decode[UserCreated](payload)
	case TypePaymentCompleted, TypeTransactionCreated:
		return Decode[Payment](payload)
	case TypeTicketCreated:
		return Decode[TicketCreated](payload)
	case TypeTicketStatusChanged:
		return Decode[TicketStatusChanged](payload)
	case TypeTicketMessageAdded:
		return Decode[TicketMessageAdded](payload)
	case TypeWebhookTest:
		return Decode[WebhookTest](payload)
	case TypeWebhookDisabled:
		return Decode[WebhookDisabled](payload)
	}
	return nil, nil
}

// TestPayloadStructsMatchSchemas holds every payload struct to its schema: the same keys in the
// same order, values for required fields and pointers for optional ones, Go types for JSON types.
func TestPayloadStructsMatchSchemas(t *testing.T) {
	goType := map[kind]reflect.Type{
		kindInteger: reflect.TypeFor[Int](),
		kindNumber:  reflect.TypeFor[float64](),
		kindString:  reflect.TypeFor[string](),
		kindBoolean: reflect.TypeFor[bool](),
	}
	for _, s := range table {
		t.Run(s.name, func(t *testing.T) {
			st, ok := payloadStructs[s.name]
			if !ok {
				t.Fatal("no payload struct")
			}
			if st.NumField() != len(s.properties) {
				t.Fatalf("got %d struct fields, want %d", st.NumField(), len(s.properties))
			}
			for i, p := range s.properties {
				f := st.Field(i)
				if tag := f.Tag.Get("json"); tag != p.name {
					t.Errorf("field %d: got json tag %q, want %q", i, tag, p.name)
				}
				want := goType[p.kind]
				if p.format == formatDateTime {
					want = reflect.TypeFor[time.Time]()
				}
				if !p.required {
					want = reflect.PointerTo(want)
				}
				if f.Type != want {
					t.Errorf("field %s: got Go type %v, want %v", p.name, f.Type, want)
				}
			}
		})
	}
}
