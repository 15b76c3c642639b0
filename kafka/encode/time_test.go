package encode

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
)

// TestCivilAllDays checks the fast date formatter against package time for
// every day of years 0000-9999 and a margin beyond.
func TestCivilAllDays(t *testing.T) {
	var buf []byte
	for days := int64(minFastDays - 800); days <= maxFastDays+800; days++ {
		buf = appendDate(buf[:0], days)
		want := time.Unix(days*86400, 0).UTC().Format(time.DateOnly)
		if string(buf) != want {
			t.Fatalf("day %d: got %s, want %s", days, buf, want)
		}
	}
}

// TestAppendTimestampRandom checks timestamps of every unit against
// time.Time formatting, including before 1970 and outside years 0000-9999.
func TestAppendTimestampRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	units := map[int64]arrow.TimeUnit{1: arrow.Second, 1e3: arrow.Millisecond, 1e6: arrow.Microsecond, 1e9: arrow.Nanosecond}
	layouts := map[int]string{0: "2006-01-02T15:04:05Z", 3: "2006-01-02T15:04:05.000Z", 6: "2006-01-02T15:04:05.000000Z", 9: "2006-01-02T15:04:05.000000000Z"}
	for _, perSec := range []int64{1, 1e3, 1e6, 1e9} {
		digits := map[int64]int{1: 0, 1e3: 3, 1e6: 6, 1e9: 9}[perSec]
		// limit keeps seconds within what time.Time handles (±300k years).
		limit := int64(math.MaxInt64)
		if perSec == 1 {
			limit = 300_000 * 365 * 86400
		}
		lo, hi := max(minFastDays, math.MinInt64/perSec/86400+1), min(maxFastDays, math.MaxInt64/perSec/86400-1)
		vals := []int64{0, -1, 1, perSec - 1, -perSec, -limit, limit, 0, 86400*perSec - 1, 86400 * perSec}
		for range 200_000 {
			switch r.IntN(3) {
			case 0:
				vals = append(vals, int64(r.Uint64N(uint64(limit)*2))-limit)
			case 1: // years 0000-9999 as far as the unit reaches
				vals = append(vals, (r.Int64N(hi-lo)+lo)*86400*perSec+r.Int64N(86400*perSec))
			default: // near the epoch
				vals = append(vals, r.Int64N(2e6*perSec)-1e6*perSec)
			}
		}
		// Runs of close values exercise the formatter's date cache.
		v := -3 * 86400 * perSec
		for k := range 100_000 {
			v += int64(k%7)*perSec*3600/5 - perSec
			vals = append(vals, v)
		}
		f := newTSFormatter(units[perSec])
		for _, v := range vals {
			secs, frac := floorDivMod(v, perSec)
			want := time.Unix(secs, frac*(1e9/perSec)).UTC().Format(layouts[digits])
			if got := f.append(nil, v); string(got) != want {
				t.Fatalf("timestamp %d (1/%d s): got %s, want %s", v, perSec, got, want)
			}
		}
	}
}

func TestAppendTimeOfDay(t *testing.T) {
	for _, tc := range []struct {
		v, perSec int64
		digits    int
		want      string
	}{
		{0, 1, 0, "00:00:00"},
		{86399, 1, 0, "23:59:59"},
		{3723, 1, 0, "01:02:03"},
		{3723004, 1e3, 3, "01:02:03.004"},
		{3723000004, 1e6, 6, "01:02:03.000004"},
		{3723000000004, 1e9, 9, "01:02:03.000000004"},
		{86399999999999, 1e9, 9, "23:59:59.999999999"},
		// Out of range for Arrow, written legibly anyway.
		{86400, 1, 0, "24:00:00"},
		{360000, 1, 0, "100:00:00"},
		{-1, 1e3, 3, "-00:00:00.001"},
		{math.MinInt64, 1e9, 9, "-2562047:47:16.854775808"},
	} {
		if got := appendTimeOfDay(nil, tc.v, tc.perSec, tc.digits); string(got) != tc.want {
			t.Errorf("appendTimeOfDay(%d, %d) = %s, want %s", tc.v, tc.perSec, got, tc.want)
		}
	}
}
