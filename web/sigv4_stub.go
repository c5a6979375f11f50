package web

import "net/http"

// TEMPORARY until the sigv4 branch lands.
type Credentials struct{ AccessKeyID, SecretAccessKey string }
type AuthError struct {
	Code    string
	Status  int
	Message string
}

func (e *AuthError) Error() string { return e.Code }

type Verifier struct{ open bool }

func LoadCredentials(path string) ([]Credentials, error) { return nil, nil }
func NewVerifier(creds []Credentials) *Verifier            { return &Verifier{open: len(creds) == 0} }
func (v *Verifier) Open() bool                             { return v.open }
func (v *Verifier) Verify(r *http.Request, bodySHA256 string) error { return nil }
