// Package plot writes line charts as standalone SVG files for the
// benchmarks' markdown reports, which embed them with ![..](x.svg). It has
// no dependencies beyond the standard library so that any benchmark can
// draw a chart; it does one thing: a Chart of one or more series of
// points, on linear or log10 axes with 1-2-5 ticks, a legend and a title,
// written as the same bytes for the same chart so that regenerated
// reports only change where their numbers did.
package plot
