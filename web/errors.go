package web

import (
	"errors"
	"fmt"
	"net/http"

	mp4clip "github.com/kvsgate/kvsgate/clip"
	"github.com/kvsgate/kvsgate/fragments"
	"github.com/kvsgate/kvsgate/hls"
	"github.com/kvsgate/kvsgate/images"
	"github.com/kvsgate/kvsgate/session"
	"github.com/labstack/echo/v4"
)

// APIError is an error as the AWS JSON protocols send it: a status code, an
// exception name (the body's __type and the x-amzn-ErrorType header) and a message.
type APIError struct {
	Status  int
	Type    string
	Message string
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
	if ae.Status >= 500 {
		s.log.Error("request failed", "path", c.Request().URL.Path, "request_id", requestID(c), "err", err)
	}
	if c.Response().Committed {
		s.log.Warn("error after response started", "path", c.Request().URL.Path, "request_id", requestID(c), "err", err)
		return
	}
	h := c.Response().Header()
	h.Set("x-amzn-ErrorType", ae.Type)
	h.Set(echo.HeaderContentType, "application/x-amz-json-1.1")
	if c.Request().Method == http.MethodHead {
		c.NoContent(ae.Status)
		return
	}
	c.JSON(ae.Status, map[string]string{"__type": ae.Type, "Message": ae.Message, "message": ae.Message})
}
