package web

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	mp4clip "github.com/kvsgate/kvsgate/clip"
	"github.com/kvsgate/kvsgate/fragments"
	"github.com/kvsgate/kvsgate/hls"
	"github.com/kvsgate/kvsgate/images"
	"github.com/kvsgate/kvsgate/session"
	"github.com/kvsgate/kvsgate/session/limits"
	"github.com/labstack/echo/v4"
)

// APIError is an error as the AWS JSON protocols send it: a status code, an
// exception name (the body's __type and the x-amzn-ErrorType header) and a message.
type APIError struct {
	Status  int
	Type    string
	Message string
	// RetryAfter, when set, goes out as a Retry-After header (whole seconds,
	// rounded up): when a throttled request would be admitted.
	RetryAfter time.Duration
}

func (e *APIError) Error() string { return e.Type + ": " + e.Message }

func apiErr(status int, typ, format string, args ...any) *APIError {
	return &APIError{Status: status, Type: typ, Message: fmt.Sprintf(format, args...)}
}

func invalidArg(format string, args ...any) *APIError {
	return apiErr(http.StatusBadRequest, "InvalidArgumentException", format, args...)
}

func notFound(format string, args ...any) *APIError {
	return apiErr(http.StatusNotFound, "ResourceNotFoundException", format, args...)
}

// limitExceeded is a request refused by the limits (session/limits):
// ClientLimitExceededException for a rate or fragment credits,
// ConnectionLimitExceededException for GetMedia's connection limit, as the
// guide's quota section says. GetMediaForFragmentList's requests in
// progress are a connection limit too, but its API (and so every SDK)
// knows only ClientLimitExceededException: that is what it gets.
func limitExceeded(stream string, err error) error {
	var le *limits.Error
	if !errors.As(err, &le) {
		return err
	}
	typ := "ClientLimitExceededException"
	if le.Connection && le.Conn == limits.GetMediaConns {
		typ = "ConnectionLimitExceededException"
	}
	msg := le.Error()
	if stream != "" {
		msg = "stream " + stream + ": " + msg
	}
	return &APIError{Status: http.StatusBadRequest, Type: typ, Message: msg, RetryAfter: le.RetryAfter}
}

// unavailable is 503: an LL-HLS blocking request whose part did not come
// in time (RFC 8216bis asks for 503 then).
func unavailable(format string, args ...any) *APIError {
	return apiErr(http.StatusServiceUnavailable, "ServiceUnavailableException", format, args...)
}

func noDataRetention(name string) *APIError {
	return apiErr(http.StatusBadRequest, "NoDataRetentionException", "stream %s has a data retention period of 0 hours", name)
}

// toAPIError maps every error a handler can return to the API error it
// means. This is the one place where errors become status codes.
func toAPIError(err error) *APIError {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae
	}
	var le *limits.Error
	if errors.As(err, &le) {
		return limitExceeded("", le).(*APIError)
	}
	var auth *AuthError
	if errors.As(err, &auth) {
		return &APIError{Status: auth.Status, Type: auth.Code, Message: auth.Message}
	}
	var he *echo.HTTPError
	if errors.As(err, &he) {
		switch he.Code {
		case http.StatusNotFound:
			return apiErr(http.StatusNotFound, "UnknownOperationException", "no such operation")
		case http.StatusMethodNotAllowed:
			return apiErr(http.StatusMethodNotAllowed, "UnknownOperationException", "method not allowed")
		case http.StatusRequestEntityTooLarge:
			return invalidArg("request body too large")
		}
		if he.Code >= 400 && he.Code < 500 {
			return apiErr(he.Code, "InvalidArgumentException", "%v", he.Message)
		}
	}
	switch {
	case errors.Is(err, session.ErrInvalid), errors.Is(err, session.ErrExpired):
		return apiErr(http.StatusUnauthorized, "NotAuthorizedException", "%v", err)
	case errors.Is(err, hls.ErrMissingCodecPrivate):
		return apiErr(http.StatusBadRequest, "MissingCodecPrivateDataException", "%v", err)
	case errors.Is(err, hls.ErrInvalidCodecPrivate):
		return apiErr(http.StatusBadRequest, "InvalidCodecPrivateDataException", "%v", err)
	case errors.Is(err, hls.ErrUnsupportedMedia):
		return apiErr(http.StatusBadRequest, "UnsupportedStreamMediaTypeException", "%v", err)
	case errors.Is(err, mp4clip.ErrInvalidMediaFrame):
		return apiErr(http.StatusBadRequest, "InvalidMediaFrameException", "%v", err)
	case errors.Is(err, images.ErrNoDecoder):
		// A server without ffmpeg cannot make images: a server fault, said
		// plainly (no KVS exception means "misconfigured server").
		return apiErr(http.StatusInternalServerError, "InternalFailure", "%v", err)
	case errors.Is(err, fragments.ErrNotFound):
		return notFound("the requested resource was not found")
	case errors.Is(err, fragments.ErrStreamExists):
		return apiErr(http.StatusBadRequest, "ResourceInUseException", "the stream already exists")
	case errors.Is(err, fragments.ErrVersion):
		return apiErr(http.StatusBadRequest, "VersionMismatchException", "the stream version does not match CurrentVersion")
	}
	return apiErr(http.StatusInternalServerError, "InternalFailure", "internal error")
}

// handleError is echo's error handler: every error leaves as AWS JSON, and
// nothing is written once a response has started.
func (s *Server) handleError(err error, c echo.Context) {
	ae := toAPIError(err)
	infoOfC(c).Error = ae.Type
	if ae.Status >= 500 {
		s.log.Error("request failed", "path", c.Request().URL.Path, "request_id", requestID(c), "err", err)
	}
	if c.Response().Committed {
		s.log.Warn("error after response started", "path", c.Request().URL.Path, "request_id", requestID(c), "err", err)
		return
	}
	h := c.Response().Header()
	h.Set("x-amzn-ErrorType", ae.Type)
	if ae.RetryAfter > 0 {
		h.Set("Retry-After", strconv.FormatInt(int64((ae.RetryAfter+time.Second-1)/time.Second), 10))
	}
	h.Set(echo.HeaderContentType, "application/x-amz-json-1.1")
	if c.Request().Method == http.MethodHead {
		c.NoContent(ae.Status)
		return
	}
	c.JSON(ae.Status, map[string]string{"__type": ae.Type, "Message": ae.Message, "message": ae.Message})
}
