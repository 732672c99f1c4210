"""The aiohttp JSON API and static pages."""
