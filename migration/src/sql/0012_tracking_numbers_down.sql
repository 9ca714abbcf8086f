-- Nothing to undo: 0012 only lets tracking numbers grow past six digits, and putting back the
-- definition that cut them would bring back the collision. 0003's down drops the function.
select 1;
