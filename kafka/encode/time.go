package encode

import (
	"slices"
	"strconv"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
)

// Dates and times are written as JSON strings: dates as YYYY-MM-DD, times of
// day as HH:MM:SS and timestamps as RFC 3339 in UTC, with exactly as many
// fraction digits as the column's unit has (none, 3, 6 or 9).

// date32Encoder encodes days since the epoch.
type date32Encoder struct {
	validity
	vals []int32
}

func (e *date32Encoder) bind(arr arrow.Array) {
	e.set(arr)
	e.vals = values[int32](arr)
}

func (e *date32Encoder) appendValue(dst []byte, i int) []byte {
	if e.null(i) {
		return append(dst, "null"...)
	}
	dst = append(dst, '"')
	return append(appendDate(dst, int64(e.vals[i])), '"')
}

// date64Encoder encodes milliseconds since the epoch as a date.
type date64Encoder struct {
	validity
	vals []int64
}

func (e *date64Encoder) bind(arr arrow.Array) {
	e.set(arr)
	e.vals = values[int64](arr)
}

func (e *date64Encoder) appendValue(dst []byte, i int) []byte {
	if e.null(i) {
		return append(dst, "null"...)
	}
	days, _ := floorDivMod(e.vals[i], 86_400_000)
	dst = append(dst, '"')
	return append(appendDate(dst, days), '"')
}

// unitScale is the number of ticks per second and the fraction digits of a
// time unit.
func unitScale(u arrow.TimeUnit) (perSec int64, digits int) {
	switch u {
	case arrow.Millisecond:
		return 1e3, 3
	case arrow.Microsecond:
		return 1e6, 6
	case arrow.Nanosecond:
		return 1e9, 9
	}
	return 1, 0
}

// timeOfDayEncoder encodes time32 (T=int32) and time64 (T=int64) values.
type timeOfDayEncoder[T int32 | int64] struct {
	validity
	vals   []T
	perSec int64
	digits int
}

func newTimeOfDayEncoder[T int32 | int64](u arrow.TimeUnit) *timeOfDayEncoder[T] {
	e := &timeOfDayEncoder[T]{}
	e.perSec, e.digits = unitScale(u)
	return e
}

func (e *timeOfDayEncoder[T]) bind(arr arrow.Array) {
	e.set(arr)
	e.vals = values[T](arr)
}

func (e *timeOfDayEncoder[T]) appendValue(dst []byte, i int) []byte {
	if e.null(i) {
		return append(dst, "null"...)
	}
	dst = append(dst, '"')
	return append(appendTimeOfDay(dst, int64(e.vals[i]), e.perSec, e.digits), '"')
}

// timestampEncoder encodes timestamps of any unit and zone as UTC RFC 3339.
type timestampEncoder struct {
	validity
	vals []int64
	fmt  tsFormatter
}

func newTimestampEncoder(u arrow.TimeUnit) *timestampEncoder {
	return &timestampEncoder{fmt: newTSFormatter(u)}
}

func (e *timestampEncoder) bind(arr arrow.Array) {
	e.set(arr)
	e.vals = values[int64](arr)
}

func (e *timestampEncoder) appendValue(dst []byte, i int) []byte {
	if e.null(i) {
		return append(dst, "null"...)
	}
	dst = append(dst, '"')
	return append(e.fmt.append(dst, e.vals[i]), '"')
}

// Days since the epoch of 0000-01-01 and 9999-12-31, the range the fast
// civil-date formatter handles; other dates go through package time.
const (
	minFastDays = -719_528
	maxFastDays = 2_932_896
)

// civil converts days since 1970-01-01 to a proleptic Gregorian date
// (Howard Hinnant's days-to-civil algorithm).
func civil(days int64) (year, month, day int64) {
	z := days + 719_468 // days since 0000-03-01
	era := z / 146_097
	if z < 0 && z%146_097 != 0 {
		era--
	}
	doe := z - era*146_097                                   // [0, 146096]
	yoe := (doe - doe/1460 + doe/36_524 - doe/146_096) / 365 // [0, 399]
	doy := doe - (365*yoe + yoe/4 - yoe/100)                 // [0, 365], from March 1
	mp := (5*doy + 2) / 153                                  // [0, 11], from March
	day = doy - (153*mp+2)/5 + 1
	month = mp + 3
	if month > 12 {
		month -= 12
	}
	year = yoe + era*400
	if month <= 2 {
		year++
	}
	return year, month, day
}

// appendDate appends YYYY-MM-DD (unquoted) for days since the epoch.
func appendDate(dst []byte, days int64) []byte {
	if days < minFastDays || days > maxFastDays {
		return time.Unix(days*86_400, 0).UTC().AppendFormat(dst, time.DateOnly)
	}
	y, m, d := civil(days)
	n := len(dst)
	dst = slices.Grow(dst, 10)[:n+10]
	b := dst[n:]
	put4(b, y)
	b[4] = '-'
	put2(b[5:], m)
	b[7] = '-'
	put2(b[8:], d)
	return dst
}

// rfc3339Layouts holds time layouts by number of fraction digits, for
// timestamps outside years 0000-9999.
var rfc3339Layouts = [10]string{
	0: "2006-01-02T15:04:05Z07:00",
	3: "2006-01-02T15:04:05.000Z07:00",
	6: "2006-01-02T15:04:05.000000Z07:00",
	9: "2006-01-02T15:04:05.000000000Z07:00",
}

// tsFormatter writes timestamps of one unit as UTC RFC 3339 text. It
// remembers the last date written, since consecutive rows of a batch
// mostly fall on the same day.
type tsFormatter struct {
	perSec int64
	digits int

	cached bool
	day    int64    // days since the epoch of date
	date   [10]byte // YYYY-MM-DD of day
}

func newTSFormatter(u arrow.TimeUnit) tsFormatter {
	perSec, digits := unitScale(u)
	return tsFormatter{perSec: perSec, digits: digits}
}

// append appends the text (unquoted, ending in Z) of v ticks since the
// epoch, with exactly the unit's fraction digits.
func (f *tsFormatter) append(dst []byte, v int64) []byte {
	var secs, frac int64
	switch f.digits { // constant divisors compile to multiplications
	case 0:
		secs = v
	case 3:
		secs, frac = floorDivMod(v, 1e3)
	case 6:
		secs, frac = floorDivMod(v, 1e6)
	default:
		secs, frac = floorDivMod(v, 1e9)
	}
	days, sod := floorDivMod(secs, 86_400)
	if !f.cached || days != f.day {
		if days < minFastDays || days > maxFastDays {
			t := time.Unix(secs, frac*(1e9/f.perSec)).UTC()
			return t.AppendFormat(dst, rfc3339Layouts[f.digits])
		}
		appendDate(f.date[:0], days)
		f.cached, f.day = true, days
	}
	size := len("2006-01-02T15:04:05Z")
	if f.digits > 0 {
		size += 1 + f.digits
	}
	n := len(dst)
	dst = slices.Grow(dst, size)[:n+size]
	b := dst[n:]
	copy(b, f.date[:])
	b[10] = 'T'
	putClock(b[11:], sod)
	if f.digits > 0 {
		b[19] = '.'
		putFraction(b[20:20+f.digits], frac)
	}
	b[size-1] = 'Z'
	return dst
}

// appendTimeOfDay appends HH:MM:SS plus digits fraction digits (unquoted)
// for v ticks since midnight. Values outside a day, which Arrow does not
// allow, are still written legibly: negative ones with a leading '-',
// hours past 99 with more digits.
func appendTimeOfDay(dst []byte, v, perSec int64, digits int) []byte {
	u := uint64(v)
	if v < 0 {
		dst = append(dst, '-')
		u = -u
	}
	secs, frac := u/uint64(perSec), int64(u%uint64(perSec))
	hours, rest := secs/3600, int64(secs%3600)
	if hours < 100 {
		dst = append(dst, twoDigits[2*hours], twoDigits[2*hours+1])
	} else {
		dst = strconv.AppendUint(dst, hours, 10)
	}
	size := len(":04:05")
	if digits > 0 {
		size += 1 + digits
	}
	n := len(dst)
	dst = slices.Grow(dst, size)[:n+size]
	b := dst[n:]
	b[0] = ':'
	put2(b[1:], rest/60)
	b[3] = ':'
	put2(b[4:], rest%60)
	if digits > 0 {
		b[6] = '.'
		putFraction(b[7:7+digits], frac)
	}
	return dst
}

// floorDivMod returns the floor quotient and the non-negative remainder.
func floorDivMod(a, b int64) (q, r int64) {
	q, r = a/b, a%b
	if r < 0 {
		q--
		r += b
	}
	return q, r
}

const twoDigits = "00010203040506070809" +
	"10111213141516171819" +
	"20212223242526272829" +
	"30313233343536373839" +
	"40414243444546474849" +
	"50515253545556575859" +
	"60616263646566676869" +
	"70717273747576777879" +
	"80818283848586878889" +
	"90919293949596979899"

// put2 writes v in [0, 99] as two digits.
func put2(b []byte, v int64) {
	b[0], b[1] = twoDigits[2*v], twoDigits[2*v+1]
}

// put4 writes v in [0, 9999] as four digits.
func put4(b []byte, v int64) {
	put2(b, v/100)
	put2(b[2:], v%100)
}

// putClock writes HH:MM:SS for secs in [0, 86399].
func putClock(b []byte, secs int64) {
	put2(b, secs/3600)
	b[2] = ':'
	put2(b[3:], secs/60%60)
	b[5] = ':'
	put2(b[6:], secs%60)
}

// putFraction writes frac zero-padded to exactly len(b) digits.
func putFraction(b []byte, frac int64) {
	k := len(b)
	for ; k >= 2; k -= 2 {
		put2(b[k-2:], frac%100)
		frac /= 100
	}
	if k == 1 {
		b[0] = byte('0' + frac%10)
	}
}
