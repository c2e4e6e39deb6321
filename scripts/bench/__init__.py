"""`make bench`: the stack's performance targets, each measured side by side in one run.

    .venv/bin/python -m scripts.bench [--output bench/results/latest.json]

Starts the cpu-profile stack through the launcher (as `make run` does, on free
ports) and warms every path the same way, then measures in alternating rounds
(A, B, A, B, ...; three of each) so that drift hits every side alike:
  - gateway overhead: the same chat requests through the gateway's pass-through and straight to vLLM
    (c=1, c=16), and the milliseconds the gateway adds to a one-token request (200 one at a time per side
    and round, interleaved);
  - per round: the naive sequential design of the seeds (classify, describe fractures, write the report,
    one request at a time, each stage timed), the pipeline at c=1, the fracture VLM and the report LLM each
    alone at c=16, and the pipeline at c=16 with every service's resident memory watched;
  - the pipeline at c=4, 32 and 64 (with c=1 and c=16 from the rounds: the curve, its knee marked);
  - the fracture VLM server's CPU time per request with the X-ray as sent or already resized to its
    processor's input size;
  - vLLM's own serving benchmark (TTFT, TPOT) through the gateway and directly;
  - with the stack stopped, ChexFract under `transformers` in-process with 1 and 2 threads.
Every target is the median of its rounds' ratios, printed with the spread. Output
lengths are shortened (OUTPUT_TOKENS) so that the run fits in 15 minutes on 2
cores; every side of a comparison uses the same ones. Writes the machine, the
versions, every raw figure and the targets to bench/results/latest.json and the
curve to docs/img/bench-curve.png (shown in docs/performance.md); prints PASS or FALL SHORT per target.
"""
