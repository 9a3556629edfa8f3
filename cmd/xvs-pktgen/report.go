package main

import (
	"encoding/json"
	"strconv"
	"strings"
)

// fields is an ordered list of key=value pairs: the same list makes the
// text line and the JSON object, so both always use the same names.
type fields []field

type field struct {
	key string
	val any // string, int, uint64 or fixed
}

// fixed is a float printed with a fixed number of decimals.
type fixed struct {
	v    float64
	prec int
}

func (f *fields) add(key string, val any) { *f = append(*f, field{key, val}) }

func format(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case int:
		return strconv.Itoa(v)
	case uint64:
		return strconv.FormatUint(v, 10)
	case fixed:
		return strconv.FormatFloat(v.v, 'f', v.prec, 64)
	}
	panic("report: unsupported value type")
}

// text is "k1=v1 k2=v2 ...".
func (f fields) text() string {
	var b strings.Builder
	for i, kv := range f {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(kv.key)
		b.WriteByte('=')
		b.WriteString(format(kv.val))
	}
	return b.String()
}

// json is a JSON object with the keys in order.
func (f fields) json() string {
	var b strings.Builder
	b.WriteByte('{')
	for i, kv := range f {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(kv.key)
		b.Write(k)
		b.WriteByte(':')
		if s, ok := kv.val.(string); ok {
			v, _ := json.Marshal(s)
			b.Write(v)
		} else {
			b.WriteString(format(kv.val))
		}
	}
	b.WriteByte('}')
	return b.String()
}

// rate is count per second over secs (0 when secs is 0).
func rate(count uint64, secs float64) float64 {
	if secs <= 0 {
		return 0
	}
	return float64(count) / secs
}

// mbps is megabits per second for bytes over secs.
func mbps(bytes uint64, secs float64) float64 { return rate(bytes, secs) * 8 / 1e6 }

// lossPct is the share of sent frames not received, in percent; negative
// when the sink counted more than was sent.
func lossPct(sent, received uint64) float64 {
	if sent == 0 {
		return 0
	}
	return (float64(sent) - float64(received)) / float64(sent) * 100
}
