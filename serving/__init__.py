"""Serving of pushed models over TF Serving's API (docs/serving.md).

server.py (gRPC services) · model_manager.py (versions, hot swap, status) · batching.py ·
predictor.py (the shared Predict path) · rest.py · client.py (typed client) · deploy.py and
k8s/ (TF Serving config, Kubernetes) · load_test.py · commands.py (serve, query, bench serve).
"""
