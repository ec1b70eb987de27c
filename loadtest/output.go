package loadtest

import (
	"errors"
	"fmt"
	"image/color"
	"io"
	"math"
	"path/filepath"
	"strings"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// WriteHgrm writes the corrected latency distribution in HdrHistogram's
// percentile-distribution format (values in milliseconds), which the
// HdrHistogram plotter and wrk2 tooling read.
func (rep *Report) WriteHgrm(w io.Writer) error {
	h := rep.corrected
	if h == nil {
		h = hdrhistogram.New(histLowest, histHighest, histDigits)
	}
	_, err := h.PercentilesPrint(w, 5, 1000)
	return err
}

// plotQuantileCap is the highest percentile drawn: 99.999%.
const plotQuantileCap = 0.99999

// WritePlot draws latency by percentile (corrected and uncorrected) to file;
// the extension picks the format: .svg or .png.
func (rep *Report) WritePlot(file string) error {
	ext := strings.ToLower(filepath.Ext(file))
	if ext != ".svg" && ext != ".png" {
		return fmt.Errorf("loadtest: plot %q: want a .svg or .png file", file)
	}
	if rep.corrected == nil || rep.corrected.TotalCount() == 0 {
		return errors.New("loadtest: plot: no latency samples to draw")
	}
	p := plot.New()
	p.Title.Text = fmt.Sprintf("%s: latency by percentile (%s)", rep.Target, rep.Mode)
	p.X.Label.Text = "percentile"
	p.Y.Label.Text = "latency (ms)"
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.ConstantTicks{
		{Value: 1 / (1 - 0.5), Label: "50%"},
		{Value: 1 / (1 - 0.9), Label: "90%"},
		{Value: 1 / (1 - 0.99), Label: "99%"},
		{Value: 1 / (1 - 0.999), Label: "99.9%"},
		{Value: 1 / (1 - 0.9999), Label: "99.99%"},
		{Value: 1 / (1 - plotQuantileCap), Label: "99.999%"},
	}
	p.Add(plotter.NewGrid())
	for _, series := range []struct {
		name  string
		h     *hdrhistogram.Histogram
		color color.Color
	}{
		{"corrected (from intended send)", rep.corrected, color.RGBA{R: 200, A: 255}},
		{"uncorrected (from actual send)", rep.uncorrected, color.RGBA{B: 200, A: 255}},
	} {
		if series.h == nil || series.h.TotalCount() == 0 {
			continue
		}
		line, err := plotter.NewLine(percentileXYs(series.h))
		if err != nil {
			return fmt.Errorf("loadtest: plot: %w", err)
		}
		line.Color = series.color
		line.Width = vg.Points(1.5)
		p.Add(line)
		p.Legend.Add(series.name, line)
	}
	p.Legend.Top = true
	p.Legend.Left = true
	if err := p.Save(20*vg.Centimeter, 12*vg.Centimeter, file); err != nil {
		return fmt.Errorf("loadtest: plot: %w", err)
	}
	return nil
}

// percentileXYs samples h at percentiles spaced evenly on the 1/(1-q) log
// axis, from 0% to plotQuantileCap.
func percentileXYs(h *hdrhistogram.Histogram) plotter.XYs {
	const steps = 200
	maxX := math.Log10(1 / (1 - plotQuantileCap))
	xys := make(plotter.XYs, 0, steps+1)
	for i := 0; i <= steps; i++ {
		x := math.Pow(10, maxX*float64(i)/steps) // 1 .. 1e5
		q := 1 - 1/x
		xys = append(xys, plotter.XY{X: x, Y: float64(h.ValueAtQuantile(q*100)) / 1000})
	}
	return xys
}
