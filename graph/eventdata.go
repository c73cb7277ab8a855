package graph

import (
	"fmt"
	"strings"
	"time"

	"github.com/eventgate/eventgate/graph/model"
	"github.com/eventgate/eventgate/server/catalog"
)

// eventData turns a stored payload into the typed GraphQL data of its type (DESIGN.md §2). Fields
// the payload omits or sets to null stay nil; keys outside the schema are left out. A type the
// catalog does not know has no typed data: (nil, nil).
func eventData(eventType string, payload []byte) (model.EventData, error) {
	switch eventType {
	case catalog.TypeUserCreated:
		return convert(eventType, payload, func(p *catalog.UserCreated) model.EventData {
			return &model.UserCreated{
				UserID:       int64(p.UserID),
				TelegramID:   (*int64)(p.TelegramID),
				Username:     p.Username,
				FirstName:    p.FirstName,
				LastName:     p.LastName,
				Email:        p.Email,
				AuthType:     p.AuthType,
				ReferralCode: p.ReferralCode,
				ReferredByID: (*int64)(p.ReferredByID),
			}
		})
	case catalog.TypePaymentCompleted:
		return convert(eventType, payload, func(p *catalog.Payment) model.EventData {
			d := paymentData(p)
			return &d
		})
	case catalog.TypeTransactionCreated:
		return convert(eventType, payload, func(p *catalog.Payment) model.EventData {
			// The two GraphQL types have the same fields, so one converts into the other.
			d := model.TransactionCreated(paymentData(p))
			return &d
		})
	case catalog.TypeTicketCreated:
		return convert(eventType, payload, func(p *catalog.TicketCreated) model.EventData {
			return &model.TicketCreated{
				TicketID: int64(p.TicketID),
				UserID:   int64(p.UserID),
				Title:    p.Title,
				Status:   p.Status,
				Priority: ticketPriority(p.Priority),
				HasMedia: p.HasMedia,
			}
		})
	case catalog.TypeTicketStatusChanged:
		return convert(eventType, payload, func(p *catalog.TicketStatusChanged) model.EventData {
			return &model.TicketStatusChanged{
				TicketID:  int64(p.TicketID),
				UserID:    (*int64)(p.UserID),
				OldStatus: p.OldStatus,
				NewStatus: p.NewStatus,
				ClosedAt:  utc(p.ClosedAt),
			}
		})
	case catalog.TypeTicketMessageAdded:
		return convert(eventType, payload, func(p *catalog.TicketMessageAdded) model.EventData {
			return &model.TicketMessageAdded{
				TicketID:    int64(p.TicketID),
				MessageID:   int64(p.MessageID),
				UserID:      (*int64)(p.UserID),
				IsFromAdmin: p.IsFromAdmin,
				MessageText: p.MessageText,
				HasMedia:    p.HasMedia,
				Status:      p.Status,
			}
		})
	case catalog.TypeWebhookTest:
		return convert(eventType, payload, func(p *catalog.WebhookTest) model.EventData {
			return &model.WebhookTest{WebhookID: p.WebhookID, Message: p.Message}
		})
	case catalog.TypeWebhookDisabled:
		return convert(eventType, payload, func(p *catalog.WebhookDisabled) model.EventData {
			return &model.WebhookDisabled{WebhookID: p.WebhookID, Reason: p.Reason}
		})
	}
	return nil, nil
}

// convert decodes payload into the catalog's struct P and builds the GraphQL data from it.
func convert[P any](eventType string, payload []byte, build func(*P) model.EventData) (model.EventData, error) {
	p, err := catalog.Decode[P](payload)
	if err != nil {
		return nil, fmt.Errorf("typed data of %s: %w", eventType, err)
	}
	return build(p), nil
}

func paymentData(p *catalog.Payment) model.PaymentCompleted {
	return model.PaymentCompleted{
		TransactionID: int64(p.TransactionID),
		UserID:        int64(p.UserID),
		Type:          p.Type,
		AmountKopeks:  int64(p.AmountKopeks),
		AmountRubles:  p.AmountRubles,
		PaymentMethod: p.PaymentMethod,
		ExternalID:    p.ExternalID,
		IsCompleted:   p.IsCompleted,
		Description:   p.Description,
	}
}

// ticketPriority maps the payload's lower-case priority to the GraphQL enum. A value outside the
// enum (only possible for a payload stored without validation) gives nil rather than an invalid
// enum value in the response.
func ticketPriority(p *string) *model.TicketPriority {
	if p == nil {
		return nil
	}
	for _, v := range model.AllTicketPriority {
		if strings.ToLower(string(v)) == *p {
			return &v
		}
	}
	return nil
}

// utc returns t in UTC, as every Time of the API is (DESIGN.md §3), or nil.
func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}
