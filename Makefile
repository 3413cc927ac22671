# Convenience wrappers around ./dev (which works without make on a fresh machine).
.PHONY: run test bench bench-recovery bench-soak check doctor
run:
	./dev run
test:
	./dev test
bench:
	./dev bench recording
	./dev bench recovery
bench-recovery:
	./dev bench recovery
bench-soak:
	./dev bench soak
check:
	./dev check
doctor:
	./dev doctor
