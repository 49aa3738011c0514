package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/distsync/distsync"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// handler serves /metrics from reg, /healthz from el and /inspect through
// s, which may inspect any name.
func handler(reg *prometheus.Registry, el *distsync.Elector, s distsync.Session) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.Handle("GET /healthz", el.Healthz(healthTolerance))
	mux.HandleFunc("GET /inspect", func(w http.ResponseWriter, r *http.Request) {
		name := r.URL.Query().Get("name")
		if name == "" {
			http.Error(w, "missing ?name=", http.StatusBadRequest)
			return
		}
		st, err := s.Inspect(r.Context(), name)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(viewStatus(st))
	})
	return mux
}

// statusView is the JSON of a distsync.Status: durations as strings, and
// the fields a backend does not know left out.
type statusView struct {
	Name    string       `json:"name"`
	Limit   int64        `json:"limit,omitempty"`
	Holders []holderView `json:"holders"`
	Waiters []holderView `json:"waiters"`
}

type holderView struct {
	Token    uint64     `json:"token"`
	Identity string     `json:"identity"`
	Mode     string     `json:"mode"`
	Weight   int64      `json:"weight,omitempty"` // permits; left out when 1
	Since    *time.Time `json:"since,omitempty"`
	TTL      string     `json:"ttl,omitempty"`
}

func viewStatus(st distsync.Status) statusView {
	v := statusView{Name: st.Name, Limit: st.Limit, Holders: viewHolders(st.Holders), Waiters: viewHolders(st.Waiters)}
	return v
}

func viewHolders(hs []distsync.Holder) []holderView {
	vs := make([]holderView, 0, len(hs))
	for _, h := range hs {
		v := holderView{Token: h.Token, Identity: h.Identity, Mode: string(h.Mode)}
		if h.Weight != 1 {
			v.Weight = h.Weight
		}
		if !h.Since.IsZero() {
			since := h.Since
			v.Since = &since
		}
		if h.TTL != 0 {
			v.TTL = h.TTL.String()
		}
		vs = append(vs, v)
	}
	return vs
}

// client fetches the service's own endpoints. It keeps no idle
// connections, so that nothing outlives the script.
var client = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}

// get returns the status code and body of GET url.
func get(ctx context.Context, url string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, "", fmt.Errorf("GET %s: %w", url, err)
	}
	return resp.StatusCode, string(body), nil
}
