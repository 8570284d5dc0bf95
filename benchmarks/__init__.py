"""Benchmarks of cldprov_async against a raw aiohttp loop and Cloudinary's own SDKs.

Run ``python -m benchmarks --help``; ``benchmarks/README.md`` says what is measured and how.
"""
