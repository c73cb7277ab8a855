package catalog

import (
	"errors"
	"math"
)

// scanNumber returns the end of the JSON number starting at data[i], or -1 when there is none. It
// follows RFC 8259: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
func scanNumber(data []byte, i int) int {
	n := len(data)
	if i < n && data[i] == '-' {
		i++
	}
	switch {
	case i < n && data[i] == '0':
		i++
	case i < n && data[i] >= '1' && data[i] <= '9':
		i = skipDigits(data, i)
	default:
		return -1
	}
	if i < n && data[i] == '.' {
		i++
		j := skipDigits(data, i)
		if j == i {
			return -1
		}
		i = j
	}
	if i < n && (data[i] == 'e' || data[i] == 'E') {
		i++
		if i < n && (data[i] == '+' || data[i] == '-') {
			i++
		}
		j := skipDigits(data, i)
		if j == i {
			return -1
		}
		i = j
	}
	return i
}

func skipDigits(data []byte, i int) int {
	for i < len(data) && data[i] >= '0' && data[i] <= '9' {
		i++
	}
	return i
}

// parseInt reads a JSON number (already checked by scanNumber) as a 64-bit integer. Like JSON
// Schema's "integer" it accepts any spelling of an integral value (7, 7.0, 7e0, 700e-2), and it
// refuses fractions and values outside int64, so that an id never silently loses digits.
func parseInt(b []byte) (int64, problem) {
	neg := b[0] == '-'
	if neg {
		b = b[1:]
	}
	// The integer part, the fraction digits and the exponent, as spelt.
	intEnd := skipDigits(b, 0)
	whole, frac, exp := b[:intEnd], []byte(nil), 0
	rest := b[intEnd:]
	if len(rest) > 0 && rest[0] == '.' {
		end := skipDigits(rest, 1)
		frac, rest = rest[1:end], rest[end:]
	}
	if len(rest) > 0 { // an exponent
		rest = rest[1:]
		expNeg := rest[0] == '-'
		if rest[0] == '+' || rest[0] == '-' {
			rest = rest[1:]
		}
		// Once the exponent outgrows the number of digits, its exact value no longer matters: a
		// nonzero value is out of range or a fraction either way. Capping it avoids overflow.
		limit := len(b) + 20
		for _, c := range rest {
			if exp < limit {
				exp = exp*10 + int(c-'0')
			}
		}
		if expNeg {
			exp = -exp
		}
	}

	// Significant digits: whole+frac without leading and trailing zeros; value = digits × 10^exp.
	digits := func(k int) byte {
		if k < len(whole) {
			return whole[k]
		}
		return frac[k-len(whole)]
	}
	total := len(whole) + len(frac)
	exp -= len(frac)
	first := 0
	for first < total && digits(first) == '0' {
		first++
	}
	if first == total {
		return 0, problemNone
	}
	last := total
	for digits(last-1) == '0' {
		last--
		exp++
	}
	if exp < 0 {
		return 0, problemFraction
	}
	if last-first+exp > 19 { // 10^19 exceeds every int64
		return 0, problemRange
	}
	var u uint64 // < 10^19 < 2^64 by the check above
	for k := first; k < last; k++ {
		u = u*10 + uint64(digits(k)-'0')
	}
	for ; exp > 0; exp-- {
		u *= 10
	}
	switch {
	case !neg && u <= math.MaxInt64:
		return int64(u), problemNone
	case neg && u <= 1<<63:
		return int64(-u), problemNone // for u = 1<<63 this wraps to MinInt64, as it should
	}
	return 0, problemRange
}

// errNotInt is the error of Int for anything but an integral JSON number within int64.
var errNotInt = errors.New("expected a 64-bit integer")

// Int is a 64-bit integer field of a payload. It decodes every JSON number that Validate accepts as
// an integer (such as 7.0 or 7e3), which encoding/json refuses for an int64.
type Int int64

// UnmarshalJSON reads an integral JSON number; null leaves the value unchanged.
func (i *Int) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	if scanNumber(b, 0) != len(b) {
		return errNotInt
	}
	v, pr := parseInt(b)
	if pr != problemNone {
		return errNotInt
	}
	*i = Int(v)
	return nil
}
