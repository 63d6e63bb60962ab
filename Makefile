.PHONY: demo test bench lint
demo:  ## the whole hub against the sandbox, with a referral story
	./dev demo
test:  ## the test suite
	./dev test
bench:  ## the standard benchmark (R=10000; set R=500 for a smoke run)
	./dev bench --referrers $${R:-10000}
lint:  ## ruff on everything, mypy on hub, connectors, mappings
	./dev hub --help > /dev/null
	.venv/bin/python -m ruff check hub connectors mappings sources sandbox tests benchmarks
	.venv/bin/python -m mypy
