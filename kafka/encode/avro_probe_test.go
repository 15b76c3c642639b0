package encode

import (
	"testing"

	"github.com/hamba/avro/v2"
)

func TestAvroProbe(t *testing.T) {
	for _, s := range []string{
		`{"type":"record","name":"R","fields":[]}`,
		`{"type":"record","name":"R","namespace":"a.b","fields":[{"name":"string","type":{"type":"record","name":"string","namespace":"a.b.R","fields":[]}}]}`,
		`{"type":"record","name":"R","fields":[{"name":"f","type":{"type":"fixed","name":"f","namespace":"R","size":0}}]}`,
		`{"type":"record","name":"R","fields":[{"name":"t","type":{"type":"long","logicalType":"timestamp-nanos"},"doc":"x"}]}`,
		`{"type":"record","name":"R","fields":[{"name":"t","type":["null","null"]}]}`,
		`{"type":"record","name":"R","fields":[{"name":"t","type":"null","default":null}]}`,
		`{"type":"record","name":"R","fields":[{"name":"t","type":{"type":"bytes","logicalType":"decimal","precision":20,"scale":0}}]}`,
		`{"type":"record","name":"R","namespace":"x","fields":[{"name":"a","type":{"type":"record","name":"a","namespace":"x.R","fields":[{"name":"b","type":{"type":"record","name":"b","namespace":"x.R.a","fields":[]}}]}}]}`,
	} {
		sc, err := avro.Parse(s)
		if err != nil {
			t.Logf("%s: %v", s, err)
			continue
		}
		t.Logf("ok: %s", sc.String())
	}
}
