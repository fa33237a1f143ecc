// Command promql-check parses PromQL expressions with Prometheus's own parser.
//
// It reads a JSON array of {"name", "expr", "for"} objects on standard input
// and prints one line per invalid expression or duration; it exits 1 if there
// was any.  The chart tests use it on the PrometheusRule the chart renders.
package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"
)

type rule struct {
	Name string `json:"name"`
	Expr string `json:"expr"`
	For  string `json:"for"`
}

func main() {
	var rules []rule
	if err := json.NewDecoder(os.Stdin).Decode(&rules); err != nil {
		fmt.Fprintln(os.Stderr, "promql-check: reading rules:", err)
		os.Exit(2)
	}
	p := parser.NewParser(parser.Options{})
	bad := 0
	for _, r := range rules {
		expr, err := p.ParseExpr(r.Expr)
		if err != nil {
			fmt.Printf("%s: %v\n", r.Name, err)
			bad++
			continue
		}
		// An alerting rule must yield a vector (or a scalar turned into one).
		if t := expr.Type(); t != parser.ValueTypeVector && t != parser.ValueTypeScalar {
			fmt.Printf("%s: expression is a %s, not a vector\n", r.Name, t)
			bad++
		}
		if r.For != "" {
			if _, err := model.ParseDuration(r.For); err != nil {
				fmt.Printf("%s: for: %v\n", r.Name, err)
				bad++
			}
		}
	}
	if bad > 0 {
		os.Exit(1)
	}
}
