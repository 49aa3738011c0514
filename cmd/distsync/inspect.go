package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/distsync/distsync"
)

// runInspect is inspect: who holds and who waits for NAME.
func runInspect(c *config, sigs *signals) int {
	return withSession(c, sigs, func(ctx context.Context, s distsync.Session, end func() os.Signal) int {
		st, err := s.Inspect(ctx, c.name)
		if err != nil {
			return failOrSignal(c, err, end)
		}
		if c.output == "json" {
			err = writeStatusJSON(c.stdout, st)
		} else {
			err = writeStatusText(c.stdout, st, time.Now())
		}
		if err != nil {
			fmt.Fprintf(c.stderr, "distsync inspect: %v\n", err)
			return exitBackend
		}
		return exitOK
	})
}

// holderJSON is a distsync.Holder in inspect -o json.
type holderJSON struct {
	Token    uint64     `json:"token"`
	Identity string     `json:"identity"`
	Mode     string     `json:"mode"`
	Weight   int64      `json:"weight"`
	Since    *time.Time `json:"since,omitempty"`
	TTLms    int64      `json:"ttl_ms"`
}

type statusJSON struct {
	Name    string       `json:"name"`
	Limit   int64        `json:"limit"`
	Holders []holderJSON `json:"holders"`
	Waiters []holderJSON `json:"waiters"`
}

func toJSON(hs []distsync.Holder) []holderJSON {
	out := make([]holderJSON, 0, len(hs))
	for _, h := range hs {
		j := holderJSON{Token: h.Token, Identity: h.Identity, Mode: string(h.Mode), Weight: h.Weight, TTLms: h.TTL.Milliseconds()}
		if !h.Since.IsZero() {
			t := h.Since
			j.Since = &t
		}
		out = append(out, j)
	}
	return out
}

// writeStatusJSON writes st as one JSON object and a newline.
func writeStatusJSON(w io.Writer, st distsync.Status) error {
	return json.NewEncoder(w).Encode(statusJSON{Name: st.Name, Limit: st.Limit, Holders: toJSON(st.Holders), Waiters: toJSON(st.Waiters)})
}

// writeStatusText writes st as a table, holders first, then waiters in
// queue order, and a limit line for a semaphore. Ages are as of now.
func writeStatusText(w io.Writer, st distsync.Status, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ROLE\tTOKEN\tIDENTITY\tMODE\tWEIGHT\tAGE\tTTL")
	row := func(role string, h distsync.Holder) {
		age := "-"
		if !h.Since.IsZero() {
			age = now.Sub(h.Since).Round(time.Millisecond).String()
		}
		ttl := "-"
		if h.TTL > 0 {
			ttl = h.TTL.Round(time.Millisecond).String()
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\n", role, h.Token, h.Identity, h.Mode, strconv.FormatInt(h.Weight, 10), age, ttl)
	}
	for _, h := range st.Holders {
		row("holder", h)
	}
	for _, h := range st.Waiters {
		row("waiter", h)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if st.Limit > 0 {
		_, err := fmt.Fprintf(w, "limit: %d\n", st.Limit)
		return err
	}
	return nil
}
