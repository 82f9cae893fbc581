"""Client-side drivers for the people who check the log: verification sources (a live server,
a data directory, a bundle), export, tiles, the monitor, evidence and FSMA reports. They do the
I/O and raise lotledger errors; they never print for a person or exit (cli/ does that)."""
