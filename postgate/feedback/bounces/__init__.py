"""Classifier pieces for feedback mail: reasons, text bounces, fallbacks, complaints."""
