"""Computer vision: decoding, orientation, YOLO detection, drawing. Imports nothing from Flask."""
