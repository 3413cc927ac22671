# Convenience wrappers around ./dev (which works without make on a fresh machine).
.PHONY: run test bench check doctor
run:
	./dev run
test:
	./dev test
bench:
	./dev bench
check:
	./dev check
doctor:
	./dev doctor
