package main

import (
	"fmt"
	"html"
	"io"
	"strings"
)

// Chart geometry, in SVG user units.
const (
	chartWidth  = 780
	labelWidth  = 250
	barArea     = 420
	barHeight   = 15
	barGap      = 4
	panelTitle  = 34
	panelMargin = 14
)

// A bar is one library's median headline in one panel.
type bar struct {
	label string
	value float64
	ok    bool // false: every round failed
	ours  bool
}

// A panel is one scenario's (or one case's) bars on one linear scale.
type panel struct {
	title  string
	format string
	bars   []bar
}

// panels returns the chart's panels: a scenario's headline per library
// (S5 at its largest size only), the median of the rounds.
func (rep *report) panels() []panel {
	var ps []panel
	for _, s := range scenarios {
		rows := rep.scenarioRows(s)
		if len(rows) == 0 {
			continue
		}
		better := "higher is better"
		if s.headline.better < 0 {
			better = "lower is better"
		}
		p := panel{title: fmt.Sprintf("%s %s: %s (%s)", s.id, s.title, s.headline.title, better), format: s.headline.format}
		last := rows[len(rows)-1].label
		for _, r := range rows {
			if s == s5 && r.label != last {
				continue
			}
			label := r.backend
			if r.label != "" {
				label += " " + r.label
			}
			label += " · " + r.name
			v, ok := r.median(s.headline.key)
			p.bars = append(p.bars, bar{label: label, value: v, ok: ok, ours: r.ours})
		}
		ps = append(ps, p)
	}
	return ps
}

// chart writes the SVG: one panel per scenario, distsync's bars in blue,
// the references' in grey.
func (rep *report) chart(w io.Writer) {
	ps := rep.panels()
	height := panelMargin
	for _, p := range ps {
		height += panelTitle + len(p.bars)*(barHeight+barGap) + panelMargin
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n",
		chartWidth, height, chartWidth, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="#ffffff"/>`+"\n")
	y := panelMargin
	for _, p := range ps {
		fmt.Fprintf(&b, `<text x="8" y="%d" font-weight="bold" font-size="13">%s</text>`+"\n", y+16, html.EscapeString(p.title))
		y += panelTitle
		top := 0.0
		for _, br := range p.bars {
			if br.ok {
				top = max(top, br.value)
			}
		}
		for _, br := range p.bars {
			fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end">%s</text>`+"\n", labelWidth-6, y+barHeight-3, html.EscapeString(br.label))
			if !br.ok {
				fmt.Fprintf(&b, `<text x="%d" y="%d" fill="#c53030">failed</text>`+"\n", labelWidth+4, y+barHeight-3)
			} else {
				width := 0.0
				if top > 0 {
					width = br.value / top * barArea
				}
				fill := "#a0aec0"
				if br.ours {
					fill = "#2b6cb0"
				}
				fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"/>`+"\n", labelWidth, y, max(width, 1), barHeight, fill)
				fmt.Fprintf(&b, `<text x="%.1f" y="%d">%s</text>`+"\n", float64(labelWidth)+max(width, 1)+5, y+barHeight-3, fmt.Sprintf(p.format, br.value))
			}
			y += barHeight + barGap
		}
		y += panelMargin
	}
	b.WriteString("</svg>\n")
	io.WriteString(w, b.String())
}
