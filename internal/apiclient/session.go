package apiclient

import (
	"context"
	"net/http"

	"github.com/moltfleet/molt/protocol"
)

// CreateSigninLink asks for a one-time link that signs in to the web
// console as the client's token.
func (c *Client) CreateSigninLink(ctx context.Context) (protocol.SigninLink, error) {
	return do[protocol.SigninLink](ctx, c, Request{Method: http.MethodPost, Path: "/v1/signin-links", Role: protocol.RoleAdmin})
}
