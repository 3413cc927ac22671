"""Object detection: models and their adapters, the backends that run them, the scheduler that
batches frames across streams, the motion gate, filters, tracker and the events they make.

Nothing here imports GStreamer: frames arrive as numpy arrays from `vigil.media.detect`."""
