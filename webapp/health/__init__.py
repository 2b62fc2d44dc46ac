"""`GET /healthz` (blueprint `health`): is the app up, its database reachable, its detection
model usable; with Celery, the broker reachable and how many workers answer a ping?"""
from flask import Blueprint

bp = Blueprint("health", __name__)
