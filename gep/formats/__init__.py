"""One module per raw event format; each turns raw bytes into ``CanonicalEvent`` or raises
``InvalidEvent`` naming the field and what was wrong."""
