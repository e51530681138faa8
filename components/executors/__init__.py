"""Layer 5, beside the control plane: where tasks run beyond the scheduler. Celery worker sets, their
Redis broker, and KEDA autoscaling."""
