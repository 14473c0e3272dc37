//go:build e2e

package e2e

import (
	"encoding/xml"
	"errors"
	"fmt"
	"html"
	"io"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// chartBar is one horizontal bar of the benchmark chart.
type chartBar struct {
	label string
	wall  time.Duration
	kind  string // "ours", "peer" or "baseline": the bar's colour
	note  string // printed after the value, e.g. the ratio
}

var barColours = map[string]string{"ours": "#2b6cb0", "peer": "#c05621", "baseline": "#a0aec0"}

// Chart geometry, in SVG user units.
const (
	chartWidth  = 1000
	chartLabelW = 420 // the label column
	chartPlotW  = 380 // the longest bar
	chartRowH   = 34
	chartTop    = 64
)

// barChart draws wall times as horizontal bars on one linear axis from 0,
// so lengths compare at a glance; each bar prints its value and note.
func barChart(title, subtitle string, bars []chartBar) string {
	longest := time.Duration(0)
	for _, b := range bars {
		longest = max(longest, b.wall)
	}
	step := tickStep(longest)
	axisMax := time.Duration(math.Ceil(float64(longest)/float64(step))) * step
	if axisMax == 0 {
		axisMax = time.Second
	}
	scale := float64(chartPlotW) / float64(axisMax)
	height := chartTop + len(bars)*chartRowH + 40

	var s strings.Builder
	fmt.Fprintf(&s, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="13">`+"\n", chartWidth, height, chartWidth, height)
	fmt.Fprintf(&s, `<rect width="%d" height="%d" fill="#ffffff"/>`+"\n", chartWidth, height)
	fmt.Fprintf(&s, `<text x="12" y="24" font-size="16" font-weight="bold">%s</text>`+"\n", html.EscapeString(title))
	fmt.Fprintf(&s, `<text x="12" y="44" fill="#4a5568">%s</text>`+"\n", html.EscapeString(subtitle))
	axisY := chartTop + len(bars)*chartRowH
	for v := time.Duration(0); v <= axisMax; v += step {
		x := chartLabelW + int(math.Round(float64(v)*scale))
		fmt.Fprintf(&s, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#e2e8f0"/>`+"\n", x, chartTop-6, x, axisY)
		fmt.Fprintf(&s, `<text x="%d" y="%d" text-anchor="middle" fill="#4a5568">%s</text>`+"\n", x, axisY+16, shortDuration(v))
	}
	for i, b := range bars {
		y := chartTop + i*chartRowH
		w := int(math.Round(float64(b.wall) * scale))
		fmt.Fprintf(&s, `<text x="%d" y="%d" text-anchor="end">%s</text>`+"\n", chartLabelW-8, y+17, html.EscapeString(b.label))
		fmt.Fprintf(&s, `<rect class="bar" x="%d" y="%d" width="%d" height="%d" fill="%s"><title>%s</title></rect>`+"\n",
			chartLabelW, y+2, w, chartRowH-10, barColours[b.kind], html.EscapeString(b.label+": "+b.wall.Round(100*time.Millisecond).String()))
		value := b.wall.Round(100 * time.Millisecond).String()
		if b.note != "" {
			value += "  " + b.note
		}
		fmt.Fprintf(&s, `<text x="%d" y="%d" font-weight="bold">%s</text>`+"\n", chartLabelW+w+6, y+17, html.EscapeString(value))
	}
	fmt.Fprintf(&s, `<text x="%d" y="%d" fill="#4a5568">wall time, shorter is faster</text>`+"\n", chartLabelW, axisY+34)
	s.WriteString("</svg>\n")
	return s.String()
}

// tickStep is a round axis step (1, 2 or 5 times a power of ten seconds)
// giving at most six ticks up to d.
func tickStep(d time.Duration) time.Duration {
	if d <= 0 {
		return time.Second
	}
	for p := 0.1; ; p *= 10 {
		for _, m := range []float64{1, 2, 5} {
			step := time.Duration(m * p * float64(time.Second))
			if d/step <= 6 {
				return step
			}
		}
	}
}

func shortDuration(d time.Duration) string {
	switch {
	case d == 0:
		return "0"
	case d < time.Minute:
		return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + "s"
	default:
		return d.Round(time.Second).String()
	}
}

// TestBenchChartIsAReadableBarChart checks the chart without a cluster:
// well-formed SVG, one bar per system, lengths proportional to the times,
// the longest filling the plot, values and notes printed.
func TestBenchChartIsAReadableBarChart(t *testing.T) {
	bars := []chartBar{
		{label: "sc-extension, default settings", wall: 30 * time.Second, kind: "ours"},
		{label: "ESO <default> & co", wall: 120 * time.Second, kind: "peer", note: "sc-extension 0.25x"},
		{label: "plain client-go loop", wall: 15 * time.Second, kind: "baseline", note: "sc-extension 2.00x"},
	}
	svg := barChart("1000 Secrets", "2-core machine", bars)

	dec := xml.NewDecoder(strings.NewReader(svg))
	var widths []float64
	var texts []string
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err, "well-formed SVG")
		switch el := tok.(type) {
		case xml.StartElement:
			if el.Name.Local == "rect" && attr(el, "class") == "bar" {
				w, err := strconv.ParseFloat(attr(el, "width"), 64)
				require.NoError(t, err)
				widths = append(widths, w)
			}
		case xml.CharData:
			texts = append(texts, string(el))
		}
	}
	require.Len(t, widths, 3)
	// the axis ends at a round 120s: the ESO bar fills the plot
	assert.InDelta(t, chartPlotW, widths[1], 0.5)
	assert.InDelta(t, widths[1]/4, widths[0], 1)
	assert.InDelta(t, widths[1]/8, widths[2], 1)
	all := strings.Join(texts, "|")
	for _, want := range []string{"ESO <default> & co", "2m0s  sc-extension 0.25x", "30s", "15s  sc-extension 2.00x"} {
		assert.Contains(t, all, want)
	}
}

func attr(el xml.StartElement, name string) string {
	for _, a := range el.Attr {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

func TestTickStepGivesAtMostSixRoundTicks(t *testing.T) {
	for _, c := range []struct {
		d, want time.Duration
	}{
		{3 * time.Second, 500 * time.Millisecond},
		{25 * time.Second, 5 * time.Second},
		{102 * time.Second, 20 * time.Second},
		{181 * time.Second, 50 * time.Second},
		{20 * time.Minute, 200 * time.Second},
	} {
		assert.Equal(t, c.want, tickStep(c.d), "%s", c.d)
	}
}
