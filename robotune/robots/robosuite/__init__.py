"""robosuite 1.5 manipulation tasks (Lift, PickPlaceCan, NutAssemblySquare) with a Panda arm.

robosuite itself is imported only when an environment is made (`env.py`), so listing plugins stays
fast and robotune works without it; `robot.py` reads the Panda's limits from robosuite's MJCF file.
"""
