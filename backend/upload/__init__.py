"""Receiving an upload: the multipart stream to disk, the checks of the zip and its names.

Pure: nothing here reads the settings or touches Redis; the API route passes the limits in.
"""
