from official.models.garden_model import GardenModel  # noqa: F401
