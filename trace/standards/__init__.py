"""Trace data in the standards' shapes, pure: GS1 EPCIS 2.0 events to records and back
(epcis.py) with identifier normalisation and the CBV 2.0 event hash (epcis_hash.py), FDA FSMA
204 key data elements, its sortable-spreadsheet rows and KDE check (fsma.py) and the streaming
.xlsx writer for it (xlsx.py), the recall report's tables (recall_report.py), and the one CSV
writer, which keeps partners' text from running as spreadsheet formulas (csv_safe.py)."""
