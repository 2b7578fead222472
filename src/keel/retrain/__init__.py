"""Retraining: the gate that decides whether a challenger replaces the champion."""
