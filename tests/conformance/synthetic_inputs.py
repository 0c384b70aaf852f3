"""Stand-ins for the input files of recorded turns, which the recordings describe but do
not hold: the California housing CSVs of the cookbooks (two layouts) and a photo.

They have the recorded files' names, columns and sizes, with made-up values, so that a
turn's code runs as it did and the shape of each block's result (outcome, exception type,
output present, image count) can be compared; printed numbers differ, so texts are not.
"""

import base64
import random

SKLEARN_COLUMNS = ("MedInc,HouseAge,AveRooms,AveBedrms,Population,AveOccup,Latitude,"
                   "Longitude,MedHouseVal")
VERTEX_COLUMNS = ("longitude,latitude,housing_median_age,total_rooms,total_bedrooms,"
                  "population,households,median_income,median_house_value")


def housing_sklearn(rows=5000, seed=7):
    """sklearn's fetch_california_housing frame (its first 5000 rows, as recorded): exactly
    20 blocks at the 5.00001 value cap, rows 89 and 3486 among them, as in the real data
    (a recorded block selects those two by label among the 20 most expensive)."""
    r = random.Random(seed)
    others = [i for i in range(rows) if i not in (89, 3486)]
    top = {89, 3486, *r.sample(others, 18)}
    lines = [SKLEARN_COLUMNS]
    for i in range(rows):
        value = 5.00001 if i in top else round(r.uniform(0.15, 4.99), 3)
        lines.append(",".join(str(x) for x in (
            round(r.uniform(0.5, 15), 4), float(r.randint(1, 52)), round(r.uniform(2, 9), 6),
            round(r.uniform(0.8, 1.5), 6), float(r.randint(3, 3500)),
            round(r.uniform(1.5, 5), 6), round(r.uniform(32.5, 42), 2),
            round(r.uniform(-124.3, -114.3), 2), value)))
    return ("\n".join(lines) + "\n").encode()


def housing_vertex(rows=99, seed=11):
    """The Vertex AI sample's california_housing_train.csv, header and 99 rows."""
    r = random.Random(seed)
    lines = [VERTEX_COLUMNS]
    for _ in range(rows):
        lines.append(",".join(str(x) for x in (
            round(r.uniform(-124.3, -114.3), 2), round(r.uniform(32.5, 42), 2),
            float(r.randint(1, 52)), float(r.randint(100, 8000)), float(r.randint(20, 1500)),
            float(r.randint(50, 4000)), float(r.randint(20, 1400)),
            round(r.uniform(0.5, 15), 4), float(r.randint(15000, 500001)))))
    return ("\n".join(lines) + "\n").encode()


# The host's python3 may lack PIL: the photo is drawn by the server under test, with the
# sandbox's Pillow, and comes back as the block's image.
PHOTO_CODE = (
    "from PIL import Image, ImageDraw\n"
    "img = Image.new('RGB', (1200, 900), (90, 120, 150))\n"
    "d = ImageDraw.Draw(img)\n"
    "for i in range(0, 1200, 60):\n"
    "    d.rectangle([i, 100, i + 30, 800], fill=(200, i % 255, 40))\n"
    "img.save('photo.jpeg', quality=85)\n")


def photo_jpeg(server):
    """A 1200x900 JPEG made by `server` (a harness Server)."""
    reply = server.run(PHOTO_CODE)
    data = [p["inlineData"] for p in reply.get("parts", []) if "inlineData" in p]
    if len(data) != 1 or data[0]["mimeType"] != "image/jpeg":
        raise AssertionError(f"the server did not return the photo: {str(reply)[:500]}")
    return base64.b64decode(data[0]["data"])


def stand_in(origin, server):
    """(mime, bytes) standing in for a recorded input file described by `origin`, or None
    when there is no stand-in for it."""
    if "fetch_california_housing" in origin:
        return "text/csv", housing_sklearn()
    if "california_housing" in origin or "california-housing" in origin:
        return "text/csv", housing_vertex()
    if origin.startswith("image passed as inline bytes"):
        return "image/jpeg", photo_jpeg(server)
    return None
