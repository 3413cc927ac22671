# Convenience wrappers around ./dev (which works without make on a fresh machine).
.PHONY: run test bench bench-recovery bench-soak bench-storage bench-serving check doctor
run:
	./dev run
test:
	./dev test
bench:
	./dev bench recording
	./dev bench recovery
	./dev bench storage
	./dev bench serving
	./dev bench detection
bench-recovery:
	./dev bench recovery
bench-soak:
	./dev bench soak
bench-storage:
	./dev bench storage
bench-serving:
	./dev bench serving
check:
	./dev check
doctor:
	./dev doctor
