package ports

import "fmt"

// Range fills *v with def when it is 0 (unset) and otherwise checks that
// it lies in [lo, hi]; the error names field and value, for a port's
// constructor to wrap.
func Range(field string, v *int, def, lo, hi int) error {
	if *v == 0 {
		*v = def
		return nil
	}
	if *v < lo || *v > hi {
		return fmt.Errorf("%s %d: want %d..%d", field, *v, lo, hi)
	}
	return nil
}
