"""The benchmark runner's modules (see bench/README.md): procs (processes,
CPU and memory sampling), systems (taskcast and the peers), tools (tc-load,
tc-pub), scenarios (S1..S7), report (JSON, markdown, gnuplot)."""
