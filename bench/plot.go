package bench

import (
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Chart names: each is written as NAME.png and NAME.svg.
const (
	ChartTimeMemory = "time-vs-memory"
	ChartFaultCost  = "fault-cost-by-order"
	ChartForkScale  = "fork-vs-resident"
)

const chartW, chartH = 8 * vg.Inch, 5 * vg.Inch

// WritePlots writes the charts of the report into dir (created if need
// be), each as PNG and SVG, and returns the files written: time against
// memory per policy, the fault cost by order, and Fork latency against the
// resident size. A chart with nothing to show is left out.
func (rep *Report) WritePlots(dir string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var files []string
	for _, c := range []struct {
		name string
		make func() (*plot.Plot, error)
	}{
		{ChartTimeMemory, rep.timeMemoryPlot},
		{ChartFaultCost, rep.faultCostPlot},
		{ChartForkScale, rep.forkScalePlot},
	} {
		p, err := c.make()
		if err != nil {
			return files, fmt.Errorf("bench: chart %s: %w", c.name, err)
		}
		if p == nil {
			continue
		}
		for _, ext := range []string{".png", ".svg"} {
			f := filepath.Join(dir, c.name+ext)
			if err := p.Save(chartW, chartH, f); err != nil {
				return files, fmt.Errorf("bench: chart %s: %w", f, err)
			}
			files = append(files, f)
		}
	}
	return files, nil
}

// newPlot returns a plot with its titles and the legend at the top.
func newPlot(title, x, y string) *plot.Plot {
	p := plot.New()
	p.Title.Text, p.X.Label.Text, p.Y.Label.Text = title, x, y
	p.Legend.Top = true
	return p
}

// timeMemoryPlot: one point per (workload, policy), x the resident pages
// per page touched, y the time over the fastest policy of that workload.
func (rep *Report) timeMemoryPlot() (*plot.Plot, error) {
	fastest := map[string]int64{}
	var pols []string
	for _, r := range rep.Results {
		if r.Err != "" || r.WallNs <= 0 || r.TouchedPages <= 0 || r.ResidentPages <= 0 {
			continue
		}
		if f, ok := fastest[r.Workload]; !ok || r.WallNs < f {
			fastest[r.Workload] = r.WallNs
		}
		if !slices.Contains(pols, r.Policy) {
			pols = append(pols, r.Policy)
		}
	}
	if len(pols) == 0 {
		return nil, nil
	}
	p := newPlot("Time against memory, every workload (lower left is better)",
		"resident pages / pages touched (log)", "time / fastest policy of the workload")
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	maxX := 1.0
	for i, pol := range pols {
		var xy plotter.XYs
		for _, r := range rep.Results {
			if r.Policy != pol || r.Err != "" || r.WallNs <= 0 || r.TouchedPages <= 0 || r.ResidentPages <= 0 {
				continue
			}
			xy = append(xy, plotter.XY{
				X: float64(r.ResidentPages) / float64(r.TouchedPages),
				Y: float64(r.WallNs) / float64(fastest[r.Workload]),
			})
			maxX = math.Max(maxX, xy[len(xy)-1].X)
		}
		s, err := plotter.NewScatter(xy)
		if err != nil {
			return nil, err
		}
		s.GlyphStyle.Color = plotutil.Color(i)
		s.GlyphStyle.Shape = plotutil.Shape(i)
		s.GlyphStyle.Radius = vg.Points(3)
		p.Add(s)
		p.Legend.Add(pol, s)
	}
	p.X.Min, p.X.Max = 0.8, maxX*12 // room on the right for the legend
	p.Add(plotter.NewGrid())
	return p, nil
}

// faultCostPlot: ns per 4 KiB faulted in by the single-order policies of
// the sequential fill (or the first workload that ran them), against the
// order, with the kernel's faults and memclr as horizontal lines.
func (rep *Report) faultCostPlot() (*plot.Plot, error) {
	single := map[string]int{"4KiB": 0, "16KiB": 2, "64KiB": rep.Platform.ContOrder, "256KiB": 6, "2MiB": rep.Platform.PMDOrder}
	pick := func(workload string) plotter.XYs {
		var xy plotter.XYs
		for _, r := range rep.Results {
			if o, ok := single[r.Policy]; ok && r.Workload == workload && r.Err == "" && r.NsPer4KiB > 0 {
				xy = append(xy, plotter.XY{X: float64(o), Y: r.NsPer4KiB})
			}
		}
		slices.SortFunc(xy, func(a, b plotter.XY) int { return int(a.X - b.X) })
		return xy
	}
	xy := pick("seqfill")
	workload := "seqfill"
	for _, w := range workloads {
		if len(xy) > 0 {
			break
		}
		xy, workload = pick(w.Name), w.Name
	}
	if len(xy) == 0 {
		return nil, nil
	}
	p := newPlot(fmt.Sprintf("Fault cost by folio order (%s)", workload), "folio order", "ns per 4 KiB faulted in")
	p.Y.Min = 0
	if err := plotutil.AddLinePoints(p, "anonfolio", xy); err != nil {
		return nil, err
	}
	b := &rep.Baselines
	lo, hi := xy[0].X, xy[len(xy)-1].X
	for i, h := range []struct {
		name string
		b    Baseline
	}{
		{"kernel fault, 4 KiB pages", b.KernelFault},
		{"kernel fault, THP", b.KernelFaultTHP},
		{"memclr, 2 MiB blocks", b.memclrFor(2 << 20)},
	} {
		if !h.b.OK() {
			continue
		}
		l, err := plotter.NewLine(plotter.XYs{{X: lo, Y: h.b.Value}, {X: hi, Y: h.b.Value}})
		if err != nil {
			return nil, err
		}
		l.Color = plotutil.Color(i + 1)
		l.Dashes = []vg.Length{vg.Points(6), vg.Points(3)}
		p.Add(l)
		p.Legend.Add(h.name, l)
		p.Y.Max = math.Max(p.Y.Max, h.b.Value)
	}
	p.Y.Max *= 1.3 // room at the top for the legend
	p.Add(plotter.NewGrid())
	return p, nil
}

// forkScalePlot: Fork latency against resident size, one line per policy
// and one for the kernel's fork().
func (rep *Report) forkScalePlot() (*plot.Plot, error) {
	_, pols := forkScaleAxes(rep.ForkScale)
	if len(pols) == 0 {
		return nil, nil
	}
	p := newPlot("Fork latency against resident memory", "resident MiB", "Fork latency, µs (median, log)")
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Legend.Left = true
	maxY := 0.0
	for i, pol := range pols {
		var xy plotter.XYs
		for _, pt := range rep.ForkScale {
			if pt.Policy == pol && pt.Err == "" && pt.P50Ns > 0 {
				xy = append(xy, plotter.XY{X: float64(pt.Resident) / (1 << 20), Y: pt.P50Ns / 1e3})
			}
		}
		if len(xy) == 0 {
			continue
		}
		for _, v := range xy {
			maxY = math.Max(maxY, v.Y)
		}
		l, s, err := plotter.NewLinePoints(xy)
		if err != nil {
			return nil, err
		}
		l.Color, s.Color, s.Shape = plotutil.Color(i), plotutil.Color(i), plotutil.Shape(i)
		if pol == KernelSmall {
			l.Width = vg.Points(2)
			l.Color, s.Color = color.Black, color.Black
			s.Shape = draw.BoxGlyph{}
		}
		p.Add(l, s)
		p.Legend.Add(pol, l, s)
	}
	p.X.Min = 0
	p.Y.Max = maxY * 20 // room at the top for the legend
	p.Add(plotter.NewGrid())
	return p, nil
}
