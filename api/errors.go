// Package api holds what every REST handler in Moim shares: the one JSON
// error shape, strict request decoding and cursor pagination.
package api

import (
	"context"
	"database/sql/driver"
	"errors"
	"log/slog"
	"net"
	"syscall"

	"github.com/gofiber/fiber/v2"
)

// Error is the error every handler returns to a user. It is written as
// {"error":{"code":"snake_case","message":"human sentence"}}.
type Error struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Errorf is shorthand for a user-facing error.
func Errorf(status int, code, message string) *Error {
	return &Error{Status: status, Code: code, Message: message}
}

// BadRequest reports a request that could not be read (malformed JSON,
// unknown fields, wrong types).
func BadRequest(message string) *Error { return Errorf(fiber.StatusBadRequest, "bad_request", message) }

// Validation reports a well-formed request whose values break a rule.
func Validation(message string) *Error { return Errorf(fiber.StatusBadRequest, "validation", message) }

// Unauthorized reports a missing, malformed, tampered or expired token.
func Unauthorized(message string) *Error {
	return Errorf(fiber.StatusUnauthorized, "unauthorized", message)
}

// Forbidden reports an action the caller's role does not allow.
func Forbidden(message string) *Error { return Errorf(fiber.StatusForbidden, "forbidden", message) }

// NotMember reports an action on a room the caller does not belong to.
func NotMember() *Error {
	return Errorf(fiber.StatusForbidden, "not_member", "you are not a member of this room")
}

// NotFound reports a missing resource.
func NotFound(what string) *Error {
	return Errorf(fiber.StatusNotFound, "not_found", what+" not found")
}

// Conflict reports a request that clashes with the current state.
func Conflict(code, message string) *Error { return Errorf(fiber.StatusConflict, code, message) }

type envelope struct {
	Error *Error `json:"error"`
}

// ErrorHandler is fiber's error handler: it writes every error in the one
// shape and never leaks internals. Backend outages become 503 so clients
// retry; anything else unexpected is logged and answered with a bare 500.
func ErrorHandler(log *slog.Logger) fiber.ErrorHandler {
	return func(c *fiber.Ctx, err error) error {
		var ae *Error
		var fe *fiber.Error
		switch {
		case errors.As(err, &ae):
		case errors.As(err, &fe):
			ae = fromFiber(fe)
		case Unavailable(err):
			log.Warn("backend unavailable", "method", c.Method(), "path", c.Path(), "err", err)
			ae = Errorf(fiber.StatusServiceUnavailable, "unavailable", "a backend service is unavailable; try again shortly")
		default:
			log.Error("request failed", "method", c.Method(), "path", c.Path(), "err", err)
			ae = Errorf(fiber.StatusInternalServerError, "internal", "something went wrong on our side")
		}
		return c.Status(ae.Status).JSON(envelope{ae})
	}
}

func fromFiber(fe *fiber.Error) *Error {
	switch fe.Code {
	case fiber.StatusNotFound:
		return Errorf(fe.Code, "not_found", "no such route")
	case fiber.StatusMethodNotAllowed:
		return Errorf(fe.Code, "method_not_allowed", "method not allowed on this route")
	case fiber.StatusRequestEntityTooLarge:
		return Errorf(fe.Code, "too_large", "request body is larger than 64 KiB")
	case fiber.StatusTooManyRequests:
		return Errorf(fe.Code, "rate_limited", "too many requests; slow down")
	case fiber.StatusServiceUnavailable:
		return Errorf(fe.Code, "unavailable", fe.Message)
	}
	if fe.Code >= 500 {
		return Errorf(fe.Code, "internal", "something went wrong on our side")
	}
	return Errorf(fe.Code, "bad_request", fe.Message)
}

// Unavailable reports whether err means a backend could not be reached
// (as opposed to a bug or bad input).
func Unavailable(err error) bool {
	var ne net.Error
	return errors.Is(err, driver.ErrBadConn) ||
		errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, net.ErrClosed) ||
		errors.As(err, &ne)
}
