package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
)

const writersUsage = `Usage: flightsink writers [flags] list
       flightsink writers [flags] show WRITER_ID
       flightsink writers [flags] reset WRITER_ID

list: the caller's named writers and what each has committed (an admin's:
every principal's). show: one writer (without fencing it). reset: fences the
writer's streams on every replica (they end Aborted "fenced"), then forgets its
progress, so its next stream starts at checkpoint 1 with 0 committed rows.
--principal (admins) names another principal's writers.

Flags:
`

// writerInfo is a writer as the writers actions answer it.
type writerInfo struct {
	Principal      string  `json:"principal"`
	WriterID       string  `json:"writer_id"`
	Found          *bool   `json:"found"`
	Topic          *string `json:"topic"`
	LastCheckpoint *int64  `json:"last_checkpoint"`
	CommittedRows  int64   `json:"committed_rows"`
	CommittedAt    *string `json:"committed_at"`
}

func writers(args []string) error {
	return writersTo(os.Stdout, args)
}

func writersTo(w io.Writer, args []string) error {
	var c adminConn
	var principal string
	fl := flag.NewFlagSet("writers", flag.ContinueOnError)
	c.flags(fl)
	fl.StringVar(&principal, "principal", "", "act on this principal's writers (needs auth.principals[].admin)")
	fl.Usage = func() { fmt.Fprint(fl.Output(), writersUsage); fl.PrintDefaults() }
	if err := fl.Parse(args); err != nil {
		return err
	}
	rest := fl.Args()
	if len(rest) == 0 {
		fl.Usage()
		return errors.New("writers: say list, show WRITER_ID or reset WRITER_ID")
	}
	switch {
	case rest[0] == "list" && len(rest) == 1:
		var out struct{ Writers []writerInfo }
		body := map[string]any{}
		if principal != "" {
			body["principal"] = principal
		}
		if err := c.call("writers-list", body, &out); err != nil || c.json {
			return err
		}
		return writerTable(w, out.Writers)
	case (rest[0] == "show" || rest[0] == "reset") && len(rest) == 2:
		body := map[string]any{"writer_id": rest[1]}
		if principal != "" {
			body["principal"] = principal
		}
		if rest[0] == "show" {
			var out writerInfo
			if err := c.call("writer-show", body, &out); err != nil || c.json {
				return err
			}
			if out.Found != nil && !*out.Found {
				_, err := fmt.Fprintf(w, "writer %s of principal %s has committed nothing\n", out.WriterID, out.Principal)
				return err
			}
			return writerTable(w, []writerInfo{out})
		}
		var out struct {
			writerInfo
			Forgotten *writerInfo `json:"forgotten"`
		}
		if err := c.call("writer-reset", body, &out); err != nil || c.json {
			return err
		}
		if out.Forgotten == nil {
			_, err := fmt.Fprintf(w, "writer %s of principal %s: its streams are fenced; it had no progress to forget\n", out.WriterID, out.Principal)
			return err
		}
		_, err := fmt.Fprintf(w, "writer %s of principal %s: its streams are fenced and its progress forgotten (was checkpoint %s, %d rows on %s); its next stream starts at checkpoint 1\n",
			out.WriterID, out.Principal, orDash(out.Forgotten.LastCheckpoint), out.Forgotten.CommittedRows, deref(out.Forgotten.Topic))
		return err
	}
	fl.Usage()
	return fmt.Errorf("writers: unknown or incomplete command %q", rest)
}

func writerTable(w io.Writer, ws []writerInfo) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PRINCIPAL\tWRITER\tTOPIC\tCHECKPOINT\tCOMMITTED ROWS\tCOMMITTED AT")
	for _, x := range ws {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", x.Principal, x.WriterID, deref(x.Topic), orDash(x.LastCheckpoint), x.CommittedRows, deref(x.CommittedAt))
	}
	return tw.Flush()
}

func deref(s *string) string {
	if s == nil {
		return "-"
	}
	return *s
}

func orDash(n *int64) string {
	if n == nil {
		return "-"
	}
	return fmt.Sprint(*n)
}
