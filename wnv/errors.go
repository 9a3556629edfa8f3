package wnv

import (
	"errors"
	"fmt"
)

// Sentinel errors that callers branch on with [errors.Is]. Every error the
// policy returns wraps exactly one of them and names the field and the
// value that caused it.
var (
	// ErrInvalid: a field has a value the model refuses (out of range,
	// malformed, outside its subnet, of the wrong family...).
	ErrInvalid = errors.New("invalid")
	// ErrNotFound: the object, or one it refers to, does not exist.
	ErrNotFound = errors.New("not found")
	// ErrExists: the object, or one of its unique keys, is already there.
	ErrExists = errors.New("already exists")
	// ErrInUse: the object cannot be removed (or changed) while others
	// refer to it.
	ErrInUse = errors.New("in use")
)

// policyError is an error whose message is complete on its own (it does not
// end in ": invalid") and that unwraps to one of the sentinels.
type policyError struct {
	kind error
	msg  string
}

func (e *policyError) Error() string { return e.msg }
func (e *policyError) Unwrap() error { return e.kind }

func errorf(kind error, format string, args ...any) error {
	return &policyError{kind: kind, msg: fmt.Sprintf(format, args...)}
}

// wrap prefixes err with context, keeping its sentinel.
func wrap(prefix string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", prefix, err)
}
