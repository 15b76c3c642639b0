package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

const transactionsUsage = `Usage: flightsink transactions [flags] [list]
       flightsink transactions [flags] abort TRANSACTIONAL_ID

list: the open transactions of the server's transactional ids, oldest first,
with their age; LINGERING ones have been open longer than
kafka.transaction_timeout (at least kafka.replica_claim_ttl) and no replica's
heartbeat lists a live stream using them. abort: aborts a lingering
transaction (EndTxn as its own producer id and epoch: nothing else is touched),
and refuses any other. A non-admin principal sees only its writers'.

Flags:
`

// txnInfo is a transaction as the transactions actions answer it.
type txnInfo struct {
	TransactionalID string             `json:"transactional_id"`
	Kind            string             `json:"kind"`
	State           string             `json:"state"`
	ProducerID      int64              `json:"producer_id"`
	ProducerEpoch   int16              `json:"producer_epoch"`
	StartedAt       *string            `json:"started_at"`
	AgeMs           *int64             `json:"age_ms"`
	TimeoutMs       int64              `json:"timeout_ms"`
	Partitions      map[string][]int32 `json:"partitions"`
	Lingering       bool               `json:"lingering"`
	LiveOn          *string            `json:"live_on"`
}

func transactions(args []string) error {
	return transactionsTo(os.Stdout, args)
}

func transactionsTo(w io.Writer, args []string) error {
	var c adminConn
	fl := flag.NewFlagSet("transactions", flag.ContinueOnError)
	c.flags(fl)
	fl.Usage = func() { fmt.Fprint(fl.Output(), transactionsUsage); fl.PrintDefaults() }
	if err := fl.Parse(args); err != nil {
		return err
	}
	rest := fl.Args()
	switch {
	case len(rest) == 0 || rest[0] == "list" && len(rest) == 1:
		var out struct {
			Transactions  []txnInfo `json:"transactions"`
			LingerAfterMs int64     `json:"linger_after_ms"`
		}
		if err := c.call("transactions-list", map[string]any{}, &out); err != nil || c.json {
			return err
		}
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "TRANSACTIONAL ID\tKIND\tSTATE\tAGE\tTIMEOUT\tPARTITIONS\tLINGERING\tLIVE ON")
		for _, t := range out.Transactions {
			age := "-"
			if t.AgeMs != nil {
				age = (time.Duration(*t.AgeMs) * time.Millisecond).Round(time.Second).String()
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%v\t%s\n", t.TransactionalID, t.Kind, t.State, age,
				time.Duration(t.TimeoutMs)*time.Millisecond, partitionList(t.Partitions), t.Lingering, deref(t.LiveOn))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		_, err := fmt.Fprintf(w, "(lingering: open longer than %v with no live stream on any replica)\n", time.Duration(out.LingerAfterMs)*time.Millisecond)
		return err
	case rest[0] == "abort" && len(rest) == 2:
		var out txnInfo
		if err := c.call("transaction-abort", map[string]any{"transactional_id": rest[1]}, &out); err != nil || c.json {
			return err
		}
		_, err := fmt.Fprintf(w, "aborted the transaction of %s (producer id %d, epoch %d; partitions %s)\n",
			out.TransactionalID, out.ProducerID, out.ProducerEpoch, partitionList(out.Partitions))
		return err
	}
	fl.Usage()
	return errors.New("transactions: say list, or abort TRANSACTIONAL_ID")
}

// partitionList is "topic[0,2] other[1]".
func partitionList(parts map[string][]int32) string {
	if len(parts) == 0 {
		return "-"
	}
	topics := make([]string, 0, len(parts))
	for t := range parts {
		topics = append(topics, t)
	}
	sort.Strings(topics)
	var b strings.Builder
	for i, t := range topics {
		if i > 0 {
			b.WriteByte(' ')
		}
		ps := make([]string, len(parts[t]))
		for j, p := range parts[t] {
			ps[j] = fmt.Sprint(p)
		}
		fmt.Fprintf(&b, "%s[%s]", t, strings.Join(ps, ","))
	}
	return b.String()
}
