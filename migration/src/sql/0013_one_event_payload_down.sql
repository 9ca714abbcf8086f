-- Nothing to undo: 0013 gives the event writers one definition of the payload they already
-- wrote, so the payloads are the same either way (0006's and 0009's downs drop the functions).
select 1;
