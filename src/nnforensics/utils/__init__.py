"""Small shared helpers: devices, seeding, progress bars, atomic writes."""
