package encode

import (
	"encoding/json"
	"math"
	"math/big"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/decimal256"
)

// randomFloats returns n float64 values covering all exponents, decimal-ish
// magnitudes, integers and the boundaries of exponent notation.
func randomFloats(r *rand.Rand, n int) []float64 {
	out := []float64{0, math.Copysign(0, -1), 1e-6, 1e21, 999999999999999999999, 9.999999e20,
		math.SmallestNonzeroFloat64, math.MaxFloat64, math.SmallestNonzeroFloat32, math.MaxFloat32,
		1e-6 - 1e-22, 1e-7, 0.1, 0.2, 0.3, 1.0 / 3, 0.000001, 0.0000015, 1 << 33, 1<<33 - 0.000001, 1<<33 - 1,
		8589934591.999999, 8589934592.000001, 1e15 + 0.5, 123456.789, 100, 1e6, 0.5, 12.340000000000002}
	for len(out) < n {
		var f float64
		switch len(out) % 5 {
		case 0:
			f = math.Float64frombits(r.Uint64())
		case 1:
			f = r.Float64() * math.Pow(10, float64(r.IntN(80)-40))
		case 2:
			f = float64(r.Int64N(1<<53)) / math.Pow(10, float64(r.IntN(12)))
		case 3: // the short-decimal fast path and its edges
			f = float64(r.Int64N(1<<43)) / math.Pow(10, float64(r.IntN(8)))
		default:
			f = float64(math.Float32frombits(r.Uint32()))
		}
		if math.IsNaN(f) || math.IsInf(f, 0) {
			continue
		}
		if r.IntN(2) == 0 {
			f = -f
		}
		out = append(out, f)
	}
	return out
}

// TestAppendFloatMatchesEncodingJSON cross-checks float formatting against
// encoding/json at both widths.
func TestAppendFloatMatchesEncodingJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, f := range randomFloats(r, 300_000) {
		want, err := json.Marshal(f)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendFloat64(nil, f); string(got) != string(want) {
			t.Fatalf("float64 %v: got %s, want %s", f, got, want)
		}
		f32 := float32(f)
		if math.IsInf(float64(f32), 0) {
			continue
		}
		want, err = json.Marshal(f32)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendFloat32(nil, f32); string(got) != string(want) {
			t.Fatalf("float32 %v: got %s, want %s", f32, got, want)
		}
	}
	for _, f := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		if got := appendFloat64(nil, f); string(got) != "null" {
			t.Errorf("float64 %v: got %s, want null", f, got)
		}
		if got := appendFloat32(nil, float32(f)); string(got) != "null" {
			t.Errorf("float32 %v: got %s, want null", f, got)
		}
	}
}

// refDecimal formats an unscaled big integer with scale by string surgery.
func refDecimal(v *big.Int, scale int32) string {
	neg := v.Sign() < 0
	digits := new(big.Int).Abs(v).String()
	switch {
	case scale <= 0:
		if digits != "0" {
			for range -scale {
				digits += "0"
			}
		}
	case int(scale) >= len(digits):
		for len(digits) <= int(scale) {
			digits = "0" + digits
		}
		fallthrough
	default:
		k := len(digits) - int(scale)
		digits = digits[:k] + "." + digits[k:]
	}
	if neg {
		digits = "-" + digits
	}
	return strconv.Quote(digits)
}

// TestDecimalMatchesBigInt cross-checks decimal formatting of random
// 64-, 128- and 256-bit values against math/big.
func TestDecimalMatchesBigInt(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	scales := []int32{0, 1, 2, 5, 18, 19, 20, 38, 40, 76, -1, -3}
	randWord := func() uint64 {
		switch r.IntN(4) {
		case 0:
			return 0
		case 1:
			return math.MaxUint64
		}
		return r.Uint64() >> r.IntN(64)
	}
	for range 100_000 {
		scale := scales[r.IntN(len(scales))]

		n128 := decimal128.New(int64(randWord()), randWord())
		if got, want := string(appendDec128(n128, scale)), refDecimal(n128.BigInt(), scale); got != want {
			t.Fatalf("decimal128 %s scale %d: got %s, want %s", n128.BigInt(), scale, got, want)
		}

		n256 := decimal256.New(randWord(), randWord(), randWord(), randWord())
		if got, want := string(appendDec256(n256, scale)), refDecimal(n256.BigInt(), scale); got != want {
			t.Fatalf("decimal256 %s scale %d: got %s, want %s", n256.BigInt(), scale, got, want)
		}

		v := int64(randWord())
		if got, want := string(appendDecimalInt64(nil, v, scale)), refDecimal(big.NewInt(v), scale); got != want {
			t.Fatalf("int64 %d scale %d: got %s, want %s", v, scale, got, want)
		}
	}
}

func appendDec128(n decimal128.Num, scale int32) []byte {
	e := &decimal128Encoder{vals: []decimal128.Num{n}, scale: scale}
	return e.appendValue(nil, 0)
}

func appendDec256(n decimal256.Num, scale int32) []byte {
	e := &decimal256Encoder{vals: []decimal256.Num{n}, scale: scale}
	return e.appendValue(nil, 0)
}
