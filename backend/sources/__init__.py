"""Job sources beside upload/: the room of the coming area requests (a job from an area and a time span)."""
