"""Trace data in the standards' shapes: GS1 EPCIS 2.0 events and their event hashes, FSMA 204
key data elements and its sortable spreadsheet, and the recall report."""
