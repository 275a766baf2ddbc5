DROP TABLE node_inventories;
